"""Loading models the one way every method uses: device and dtype choice, `load_model` for a local
directory or a hub id (safetensors only, never remote code; optional LoRA through peft), the
shared-tokenizer check that teacher/student mixing methods need, and `weights_hash`, a model
directory's content hash computed once and then recognised from its file sizes and times. Every
weight load goes through `from_pretrained`, which appends the source to the load ledger (a JSON-lines
file named by $DISTILLERY_LOAD_LEDGER, when set): the proof that a worker never loaded, say, a
teacher it was meant to reach only through an endpoint.
(`render_prompt` is re-exported from ml.chat, the one place a prompt becomes model tokens.)"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ml.chat import render_prompt  # noqa: F401  (re-exported: older callers import it from here)

HASHED_SUFFIXES = (".safetensors", ".json", ".model", ".txt", ".jinja")

# transformers' from_pretrained swaps module-level functions (torch's init functions, tie_weights)
# for the duration of a load and puts back what it found; two loads overlapping in one process (a
# training task and its checkpoint-evaluator thread) can put back each other's stand-ins, leaving
# tie_weights a no-op for the life of the worker. Every load in this process takes this lock.
LOAD_LOCK = threading.RLock()
LOAD_LEDGER_ENV = "DISTILLERY_LOAD_LEDGER"


def record_load(source, *, revision: str | None = None) -> None:
    """Appends one line {"source", "revision", "pid"} to the load ledger ($DISTILLERY_LOAD_LEDGER),
    when one is set. One short write in append mode, so lines from several processes do not mix."""
    ledger = os.environ.get(LOAD_LEDGER_ENV)
    if not ledger:
        return
    line = json.dumps({"source": str(source), "revision": revision, "pid": os.getpid()}) + "\n"
    with open(ledger, "a", encoding="utf-8") as handle:
        handle.write(line)


def from_pretrained(cls, *args, **kwargs):
    """`cls.from_pretrained(*args, **kwargs)` (a transformers Auto class) under LOAD_LOCK, recorded
    in the load ledger (record_load)."""
    with LOAD_LOCK:
        record_load(args[0] if args else kwargs.get("pretrained_model_name_or_path"), revision=kwargs.get("revision"))
        return cls.from_pretrained(*args, **kwargs)


class TokenizerMismatchError(ValueError):
    """Teacher and student tokenizers differ where a method needs them identical."""


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (peft `LoraConfig`); `target_modules` names Llama's projections."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    source: str
    revision: str | None
    num_parameters: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (halves memory, native on Ampere+); fp32 on CPU, where bf16 matmuls are slow."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def model_ref(source: str, revision: str | None = None) -> str:
    """One string naming a model at a pinned revision: "org/name@rev" for a hub id, the path as is
    for a local directory. Recipes and cache keys take this string, so a revision is never dropped."""
    return f"{source}@{revision}" if revision and not Path(str(source)).exists() else str(source)


def split_model_ref(source: str, revision: str | None = None) -> tuple[str, str | None]:
    """Inverse of model_ref: ("org/name", "rev") from "org/name@rev" (hub ids never contain '@');
    an existing local path, or an explicit `revision`, is left alone."""
    text = str(source)
    if revision is None and "@" in text and not Path(text).exists():
        name, _, rev = text.rpartition("@")
        return name, rev or None
    return text, revision


def load_tokenizer(source: str, *, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, left-padded (generation appends on the right) with a pad token.
    `source` may carry a pinned revision as "org/name@rev" (model_ref)."""
    source, revision = split_model_ref(source, revision)
    tokenizer = AutoTokenizer.from_pretrained(str(source), revision=revision, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    source: str,
    *,
    revision: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    lora: LoraSpec | None = None,
    trainable: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a local directory or a hub id (+ revision).

    Frozen and in eval mode unless `trainable`; with `lora`, only the adapter weights train.
    `source` may carry a pinned revision as "org/name@rev" (model_ref)."""
    source, revision = split_model_ref(source, revision)
    device = torch.device(device) if device is not None else pick_device()
    dtype = dtype or pick_dtype(device)
    tokenizer = load_tokenizer(source, revision=revision)
    model = from_pretrained(
        AutoModelForCausalLM, str(source), revision=revision, dtype=dtype, use_safetensors=True, trust_remote_code=False
    )
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    if trainable:
        model.train()
        if lora is None:
            model.requires_grad_(True)
    else:
        model.eval()
        model.requires_grad_(False)
    num_parameters = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, str(source), revision, num_parameters, device)


def check_same_tokenizer(tok_a: PreTrainedTokenizerBase, tok_b: PreTrainedTokenizerBase, *, method: str) -> None:
    """Raise TokenizerMismatchError unless both tokenizers have the same vocabulary (token -> id)
    and the same bos/eos/unk tokens; pad is not compared (loading may default it to eos)."""
    problems = []
    vocab_a, vocab_b = tok_a.get_vocab(), tok_b.get_vocab()
    if vocab_a != vocab_b:
        differing = sorted(set(vocab_a.items()) ^ set(vocab_b.items()))
        examples = ", ".join(f"{token!r}->{idx}" for token, idx in differing[:5])
        problems.append(
            f"vocabularies differ ({len(vocab_a)} vs {len(vocab_b)} tokens; "
            f"{len(differing)} token/id entries not shared, e.g. {examples})"
        )
    for name in ("bos_token", "eos_token", "unk_token"):
        a, b = getattr(tok_a, name), getattr(tok_b, name)
        if a != b:
            problems.append(f"{name} differs ({a!r} vs {b!r})")
    if problems:
        raise TokenizerMismatchError(
            f"{method} compares teacher and student token distributions, so both models must share "
            f"one tokenizer: " + "; ".join(problems) + "."
        )


SIDECAR = ".distillery-hashes"  # per model directory: name -> [size, mtime_ns, sha256] (no hashed suffix)
_FILE_HASHES: dict = {}  # in-process fallback for read-only model directories


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(source) -> dict:
    """sha256 of each weight, config and tokenizer file of a model directory (name -> hex digest),
    each file read once ever: digests are kept in a sidecar file in the directory (and in this
    process when the directory is read-only) and reused while a file's size and mtime are unchanged,
    so a second process does not spend ~17 s re-hashing a 15 GB model. {} for a hub id."""
    path = Path(source)
    if not path.is_dir():
        return {}
    sidecar = path / SIDECAR
    try:
        known = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError):
        known = {}
    result, changed = {}, False
    for name, (size, mtime_ns) in weights_fingerprint(path).items():
        entry = known.get(name) or _FILE_HASHES.get((str(path.resolve()), name))
        if not (isinstance(entry, list) and entry[:2] == [size, mtime_ns]):
            entry, changed = [size, mtime_ns, _sha256_file(path / name)], True
        _FILE_HASHES[(str(path.resolve()), name)] = entry
        result[name] = entry[2]
    if changed or set(known) != set(result):
        try:
            partial = sidecar.with_name(f"{SIDECAR}.{os.getpid()}")
            partial.write_text(json.dumps({n: _FILE_HASHES[(str(path.resolve()), n)] for n in result}))
            os.replace(partial, sidecar)
        except OSError:
            pass  # a read-only directory (a mounted hub cache): the in-process entries still hold
    return result


def weights_fingerprint(source) -> dict:
    """Cheap identity of a model directory's files: name -> [size, mtime_ns] (a stat per file, no
    reads). {} for a hub id. Rewriting a file changes its mtime, so a stale hash is never reused."""
    path = Path(source)
    if not path.is_dir():
        return {}
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir())
            if f.is_file() and f.name.endswith(HASHED_SUFFIXES)}


def weights_hash(source, *, revision: str | None = None, stored: dict | None = None) -> dict:
    """{"sha256", "fingerprint", "revision"} of a model: for a local directory the sha256 over its
    weight, config and tokenizer files' digests (file_hashes); for a hub id, of the id and revision.

    Pass the dict stored from an earlier call as `stored`: when the files' fingerprint is unchanged
    it is returned as is, without reading a byte, so a 15 GB model is hashed once, not per process."""
    fingerprint = weights_fingerprint(source)
    if stored and stored.get("fingerprint") == fingerprint and stored.get("revision") == revision \
            and stored.get("sha256"):
        return stored
    if fingerprint:
        blob = json.dumps(file_hashes(source), sort_keys=True)
    else:
        blob = f"hub:{source}@{revision or ''}"
    return {"sha256": hashlib.sha256(blob.encode()).hexdigest(), "fingerprint": fingerprint, "revision": revision}
