"""What each training method does when the teacher and the student do not share a tokenizer
(ALGORITHMS.md §8): it runs as it is (only text crosses between the models), it runs in a
cross-tokenizer mode (KD and DCKD become ULD on character-aligned groups, ml/recipes/uld.py), or it
is refused with the reason and the alternatives. STANDARD LIBRARY ONLY: the launch form reads this
table to show the mode for the chosen pair; the gpu worker routes a run by it (`cross_method`,
`cross_config`) and lineage records the mode."""
from __future__ import annotations

import dataclasses

from ml.config import METHODS, ULDConfig, config_to_dict

SAME, RUNS, CROSS, REFUSED = "same tokenizer", "runs (text only)", "cross-tokenizer mode", "refused"

_ALTERNATIVES = ("use DCKD or KD (both run as ULD across tokenizers), DPO (reference 'base', optionally with "
                 "the NLL anchor rpo_alpha), SFT on the teacher's answers (sequence-level KD) or REDI")

MODES: dict[str, tuple[str, str]] = {
    "sft": (RUNS, "trains on text: the chosen answers, or the teacher's own generations (sequence-level KD) "
                  "re-tokenized by the student"),
    "dpo": (RUNS, "preference pairs are text and the reference is the student's own base; reference='teacher' "
                  "is refused (teacher-as-reference DPO scores one sequence of token ids under both models)"),
    "redi": (RUNS, "positive and negative traces are text; no teacher in the loop"),
    "kd": (CROSS, "runs as ULD (ALGORITHMS.md §8): NLL + sorted-probability L1 between the teacher's and the "
                  "student's next-token distributions on character-aligned groups; kind, beta, temperature and "
                  "the on-policy fraction do not apply"),
    "dckd": (CROSS, "runs as NLL(chosen) + alpha_w ULD(chosen) + alpha_l ULD(rejected) from the DPO teacher's "
                    "top-K on character-aligned groups (the binned KL needs one vocabulary)"),
    "adpa": (REFUSED, "ADPA's advantages log pi_dpo(v|s) - log pi_sft(v|s) are weighted by the student's "
                      "pi_theta(v|s) token by token, which needs one vocabulary; " + _ALTERNATIVES),
    "adpa_plus": (REFUSED, "its ADPA stage needs one vocabulary (token advantages under the student's "
                           "distribution); " + _ALTERNATIVES),
    "taid": (REFUSED, "TAID interpolates the teacher's and the student's logits token by token in one "
                      "vocabulary; " + _ALTERNATIVES),
}


def mode_of(method: str, same_tokenizer: bool | None) -> tuple[str, str]:
    """(mode, why) of `method` for a pair; same_tokenizer None (not known yet) reads as the same."""
    if same_tokenizer is None or same_tokenizer:
        return SAME, ""
    return MODES[method]


def modes_table(same_tokenizer: bool | None) -> list[tuple[str, str, str]]:
    """(method, mode, why) for every launchable method, for the launch form."""
    return [(method, *mode_of(method, same_tokenizer)) for method in METHODS]


def cross_method(method: str, config) -> tuple[str, str | None]:
    """(recipe method to run, refusal or None) for a mismatched pair. DPO with the teacher as reference
    is refused here too (its config decides it)."""
    mode, why = MODES[method]
    if mode == REFUSED:
        return method, f"{method} is refused across tokenizers: {why}"
    if method == "dpo" and getattr(config, "reference", "base") == "teacher":
        return method, ("teacher-as-reference DPO is refused across tokenizers: it scores one sequence of token ids "
                        "under both models; use reference='base' (optionally with rpo_alpha)")
    return ("uld" if mode == CROSS else method), None


def cross_config(method: str, config) -> ULDConfig:
    """The ULDConfig a KD or DCKD config runs as: the shared training fields carry over; DCKD's
    alpha_w, alpha_l, nll_weight and top_k become ULD's weight, rejected_weight, nll_weight and top_k."""
    values = config_to_dict(config)
    names = {f.name for f in dataclasses.fields(ULDConfig)}
    kept = {k: v for k, v in values.items() if k in names}
    if method == "dckd":
        kept.update(weight=values["alpha_w"], rejected_weight=values["alpha_l"])
    elif method == "kd":
        kept.pop("top_k", None)
    return ULDConfig(**kept)


_FINGERPRINTS: dict = {}  # (tokenizer.json path, mtime_ns, size) -> digest; this process only


def _token_text(value):
    return value.get("content") if isinstance(value, dict) else value


def tokenizer_fingerprint(source) -> str | None:
    """sha256 of a local model directory's vocabulary (token -> id, added tokens included) and its
    bos/eos/unk tokens, read from tokenizer.json and tokenizer_config.json with the standard library:
    two models have the same fingerprint exactly when ml.modeling.check_same_tokenizer accepts them.
    None when it cannot be known here (a hub id, an endpoint, a directory without tokenizer.json)."""
    import hashlib
    import json
    from pathlib import Path

    path = Path(str(source)) / "tokenizer.json"
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FINGERPRINTS:
        data = json.loads(path.read_text())
        vocab = data.get("model", {}).get("vocab") or {}
        if isinstance(vocab, list):  # Unigram: [[piece, score], ...], the id is the index
            vocab = {piece: index for index, (piece, _) in enumerate(vocab)}
        vocab = {**vocab, **{t["content"]: t["id"] for t in data.get("added_tokens", [])}}
        config_path = path.with_name("tokenizer_config.json")
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        specials = [_token_text(config.get(name)) for name in ("bos_token", "eos_token", "unk_token")]
        blob = json.dumps([sorted(vocab.items()), specials])
        _FINGERPRINTS[key] = hashlib.sha256(blob.encode()).hexdigest()
    return _FINGERPRINTS[key]


def same_fingerprint(teacher_source, student_source) -> bool | None:
    """True/False when both fingerprints are known here, else None (decided by the worker)."""
    a, b = tokenizer_fingerprint(teacher_source), tokenizer_fingerprint(student_source)
    return None if a is None or b is None else a == b
