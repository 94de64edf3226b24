"""Teacher signals precomputed once per (models, data) and cached on disk (ALGORITHMS.md §4-5), so
the DCKD and ADPA training loops never load a teacher: for DCKD, the DPO teacher's top-K next-token
ids and probabilities at every position of each chosen and rejected response; for ADPA, the student's
own greedy response to each prompt and, at each of its states, pi_dpo's top-K ids with the advantages
A = log pi_dpo - log pi_sft. Files are safetensors (int32 ids, float16 values, rows concatenated with
offsets) named by a content hash of everything that determines them, so a second call is a cache hit."""
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ml.losses.adpa import SFT_PROB_FLOOR, adpa_advantages
from ml.modeling import LoadedModel, check_same_tokenizer, file_hashes, load_model
from ml.recipes.batching import Encoded, collate, encode, encode_prompt, fit, forward_logits

SIGNALS_VERSION = 2  # bump when the file layout or the maths changes: old caches then miss
# 2: DCKD's teacher side at the run's temperature, ADPA's floor on every probability (issue 10 B20, B21)


@dataclass(frozen=True)
class SignalFile:
    path: Path
    kind: str  # "dckd" | "adpa"
    key: str  # content hash; also the file's stem
    cache_hit: bool
    num_rows: int
    num_tokens: int  # response positions carrying a top-K row
    top_k: int
    size_bytes_per_token: float  # top-K payload (ids + values) per response token: K x (4 + 2)
    size_bytes: int  # the whole file (payload, token ids, offsets, header)


def model_identity(model) -> dict:
    """What makes a model's outputs what they are: for a local directory the sha256 of its weight,
    config and tokenizer files (ml.modeling.file_hashes: read once, then reused from a sidecar while
    sizes and mtimes hold, so each process does not re-hash the model); for a hub id, the id and revision."""
    source = model.source if isinstance(model, LoadedModel) else str(model)
    revision = model.revision if isinstance(model, LoadedModel) else None
    path = Path(source)
    if not path.is_dir():
        return {"source": source, "revision": revision}
    return {"files": file_hashes(path), "revision": revision}


def cache_key(kind: str, *, models: dict, data: list, params: dict) -> str:
    """sha256 over the canonical JSON of (version, kind, model identities, data rows, parameters)."""
    rows = [row if isinstance(row, dict) else row.__dict__ for row in data]
    blob = json.dumps({"version": SIGNALS_VERSION, "kind": kind, "models": models, "data": rows,
                       "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _flat(rows: list, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (R_i, ...) -> (sum R_i, ...) values and (N+1,) int64 offsets."""
    tensors = [torch.as_tensor(r, dtype=dtype) for r in rows]
    offsets = torch.tensor([0] + [len(t) for t in tensors], dtype=torch.int64).cumsum(0)
    return torch.cat(tensors), offsets


def split_rows(values: torch.Tensor, offsets: torch.Tensor) -> list:
    """Inverse of the flat layout: (sum R_i, ...) + (N+1,) offsets -> list of (R_i, ...)."""
    return [values[offsets[i]: offsets[i + 1]] for i in range(len(offsets) - 1)]


def load_signals(path) -> tuple[dict, dict]:
    """(tensors, metadata) of a signal file; metadata values are parsed back from JSON."""
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        metadata = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
    return tensors, metadata


def _describe(path: Path, kind: str, key: str, hit: bool) -> SignalFile:
    tensors, meta = load_signals(path)
    payload = [t for name, t in tensors.items() if "topk" in name or "advantages" in name]
    num_tokens = sum(int(t.shape[0]) for name, t in tensors.items() if name.endswith("topk_ids"))
    payload_bytes = sum(t.numel() * t.element_size() for t in payload)
    return SignalFile(path, kind, key, hit, meta["num_rows"], num_tokens, meta["top_k"],
                      payload_bytes / max(num_tokens, 1), path.stat().st_size)


def _write(path: Path, tensors: dict, metadata: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    save_file(tensors, str(partial), metadata={k: json.dumps(v) for k, v in metadata.items()})
    os.replace(partial, path)  # atomic: a crashed run never leaves a half file under the real key


def _loaded(model, device) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(str(model), device=device)


@torch.no_grad()
def topk_logprobs(model, rows: list, *, k: int, pad_id: int, batch_size: int, on_batch=None,
                  temperature: float = 1.0) -> list:
    """Teacher-forced top-K of `model` at each response state: rows (Encoded) -> per row
    (ids (R,K) int64, logps (R,K) float32), row j = the state predicting response token j. The
    distribution is softmax(logits / temperature), the teacher side of a tempered KD loss."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        batch = collate(chunk, pad_id)
        logps = torch.log_softmax(forward_logits(model, batch).float() / temperature, dim=-1)  # (B,L-1,V)
        top_logps, top_ids = logps.topk(min(k, logps.shape[-1]), dim=-1)  # (B,L-1,K)
        for i, row in enumerate(chunk):
            begin = int(batch["response_start"][i])
            span = slice(begin, begin + len(row.response_ids))
            out.append((top_ids[i, span].cpu(), top_logps[i, span].cpu()))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(rows)), len(rows))
    return out


def precompute_dckd(teacher_dpo, pairs: list, *, cache_dir, top_k: int = 50, max_length: int = 1024,
                    batch_size: int = 8, device=None, on_progress=None, temperature: float = 1.0) -> SignalFile:
    """pi_dpo's top-K ids + probabilities on every chosen and rejected response (DCKD's teacher side),
    at `temperature` (ALGORITHMS.md §4: the student is divided by the same τ), which keys the cache."""
    params = {"top_k": top_k, "max_length": max_length, "temperature": float(temperature)}
    key = cache_key("dckd", models={"dpo": model_identity(teacher_dpo)}, data=pairs, params=params)
    path = Path(cache_dir) / "dckd" / f"{key}.safetensors"
    if path.exists():
        return _describe(path, "dckd", key, True)
    teacher = _loaded(teacher_dpo, device)
    tok = teacher.tokenizer
    tensors = {}
    for side in ("chosen", "rejected"):
        rows = [encode(tok, p.prompt, getattr(p, side), max_length) for p in pairs]
        signals = topk_logprobs(teacher.model, rows, k=top_k, pad_id=tok.pad_token_id, batch_size=batch_size,
                                on_batch=on_progress, temperature=temperature)
        tensors["prompt_ids"], tensors["prompt_offsets"] = _flat([r.prompt_ids for r in rows], torch.int32)
        tensors[f"{side}_ids"], tensors[f"{side}_offsets"] = _flat([r.response_ids for r in rows], torch.int32)
        tensors[f"{side}_topk_ids"], _ = _flat([ids for ids, _ in signals], torch.int32)
        tensors[f"{side}_topk_probs"], _ = _flat([lp.exp() for _, lp in signals], torch.float16)
    _write(path, tensors, {"kind": "dckd", "num_rows": len(pairs), **params})
    return _describe(path, "dckd", key, False)


def student_responses(generator, prompts: list, *, max_new_tokens: int, batch_size: int) -> list:
    """Greedy student response token ids, one per prompt (ADPA's states), from an ml.backends
    generator of the student (HF generate, or vLLM)."""
    outputs = generator.generate(prompts, k=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=0,
                                 batch_size=batch_size)
    return [samples[0].token_ids or [generator.tokenizer.eos_token_id] for samples in outputs]


def student_generator(student, *, backend: str | None = "hf", device=None):
    """The student's generator on `backend` (ml.backends): HF reuses a LoadedModel it is given."""
    from ml.backends import generator_for

    if isinstance(student, LoadedModel):
        return generator_for(student.source, revision=student.revision, backend=backend, loaded=student)
    return generator_for(str(student), backend=backend, device=device)


def precompute_adpa(teacher_dpo, teacher_sft, student, pairs: list, *, cache_dir, top_k: int = 50,
                    max_length: int = 1024, max_new_tokens: int = 256, batch_size: int = 8, device=None,
                    on_progress=None, sft_floor: float = SFT_PROB_FLOOR,
                    generation_backend: str | None = "hf") -> SignalFile:
    """Student greedy responses + pi_dpo top-K ids and raw advantages A at each of their states, every
    probability floored at `sft_floor` (it keys the cache). Clipping (config.advantage_clip) happens
    at training time, so one cache serves both choices. The responses come from `generation_backend`
    (ml.backends: hf, vllm or auto; None reads $DISTILLERY_GENERATION_BACKEND): both write greedy
    answers, so it does not key the cache; the file's metadata records which one ran."""
    params = {"top_k": top_k, "max_length": max_length, "max_new_tokens": max_new_tokens,
              "sft_floor": float(sft_floor)}
    models = {"dpo": model_identity(teacher_dpo), "sft": model_identity(teacher_sft),
              "student": model_identity(student)}
    key = cache_key("adpa", models=models, data=pairs, params=params)
    path = Path(cache_dir) / "adpa" / f"{key}.safetensors"
    if path.exists():
        return _describe(path, "adpa", key, True)
    with student_generator(student, backend=generation_backend, device=device) as generator:
        tok, backend = generator.tokenizer, generator.name
        responses = student_responses(generator, [p.prompt for p in pairs], max_new_tokens=max_new_tokens,
                                      batch_size=batch_size)
    # closed: the student is done once its responses exist; the teachers need the memory
    dpo, sft = _loaded(teacher_dpo, device), _loaded(teacher_sft, device)
    check_same_tokenizer(dpo.tokenizer, sft.tokenizer, method="ADPA")
    check_same_tokenizer(dpo.tokenizer, tok, method="ADPA")
    rows = [fit(encode_prompt(tok, p.prompt), ids, max_length) for p, ids in zip(pairs, responses)]
    dpo_top = topk_logprobs(dpo.model, rows, k=top_k, pad_id=tok.pad_token_id, batch_size=batch_size)
    sft_top = topk_logprobs(sft.model, rows, k=top_k, pad_id=tok.pad_token_id, batch_size=batch_size,
                            on_batch=on_progress)
    advantages = [adpa_advantages(d_ids[None], d_lp[None], s_ids[None], s_lp[None], floor=sft_floor)[0]  # (R,K)
                  for (d_ids, d_lp), (s_ids, s_lp) in zip(dpo_top, sft_top)]
    chosen = [encode(tok, p.prompt, p.chosen, max_length) for p in pairs]
    tensors = {}
    tensors["prompt_ids"], tensors["prompt_offsets"] = _flat([r.prompt_ids for r in rows], torch.int32)
    tensors["chosen_prompt_ids"], tensors["chosen_prompt_offsets"] = _flat([c.prompt_ids for c in chosen],
                                                                           torch.int32)
    tensors["chosen_ids"], tensors["chosen_offsets"] = _flat([c.response_ids for c in chosen], torch.int32)
    tensors["student_ids"], tensors["student_offsets"] = _flat([r.response_ids for r in rows], torch.int32)
    tensors["student_topk_ids"], _ = _flat([ids for ids, _ in dpo_top], torch.int32)
    tensors["student_advantages"], _ = _flat(advantages, torch.float16)
    _write(path, tensors, {"kind": "adpa", "num_rows": len(pairs), "student_generation": backend, **params})
    return _describe(path, "adpa", key, False)


def check_params(path, kind: str, **expected) -> None:
    """Refuse a signal file computed with other parameters than the run asks for (a DCKD file at
    another temperature, an ADPA file with another floor): its values would silently be wrong."""
    _, meta = load_signals(path)
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds {meta.get('kind')!r} signals, not {kind!r}")
    for name, value in expected.items():
        if name not in meta or abs(float(meta[name]) - float(value)) > 1e-12 * max(1.0, abs(float(value))):
            raise ValueError(f"signal file {Path(path).name} was computed with {name}={meta.get(name)!r}, "
                             f"the run asks for {value!r}: precompute it again with that {name}")


def dckd_rows(path) -> list:
    """Per pair: chosen/rejected Encoded plus (R,K) top-K ids (int64) and probs (float32)."""
    t, _ = load_signals(path)
    prompts = split_rows(t["prompt_ids"], t["prompt_offsets"])
    rows = [dict() for _ in prompts]
    for side in ("chosen", "rejected"):
        offsets = t[f"{side}_offsets"]
        for row, p, r, ids, probs in zip(rows, prompts, split_rows(t[f"{side}_ids"], offsets),
                                         split_rows(t[f"{side}_topk_ids"], offsets),
                                         split_rows(t[f"{side}_topk_probs"], offsets)):
            row[side] = Encoded(p.tolist(), r.tolist())
            row[f"{side}_topk_ids"], row[f"{side}_topk_probs"] = ids.long(), probs.float()
    return rows


def adpa_rows(path) -> list:
    """Per pair: chosen Encoded (NLL), student Encoded, and (R,K) top-K ids + raw advantages."""
    t, _ = load_signals(path)
    offsets = t["student_offsets"]
    return [{"chosen": Encoded(cp.tolist(), c.tolist()), "student": Encoded(p.tolist(), s.tolist()),
             "topk_ids": ids.long(), "advantages": adv.float()}
            for cp, c, p, s, ids, adv in zip(
                split_rows(t["chosen_prompt_ids"], t["chosen_prompt_offsets"]),
                split_rows(t["chosen_ids"], t["chosen_offsets"]),
                split_rows(t["prompt_ids"], t["prompt_offsets"]), split_rows(t["student_ids"], offsets),
                split_rows(t["student_topk_ids"], offsets), split_rows(t["student_advantages"], offsets))]
