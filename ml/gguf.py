"""GGUF checkpoints (llama.cpp's format) made into plain model directories: `inspect_gguf` reads the
header and says, before any heavy work, whether transformers can dequantize it (architecture and
every tensor's quantization type), and `convert_gguf` dequantizes it with transformers and the `gguf`
package and saves safetensors weights, config, tokenizer and chat template. transformers refuses to
save_pretrained a model it loaded from GGUF, so the weights are moved into a plain model rebuilt
from the same config. Progress goes through a (fraction, message) callback."""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ml.modeling import LOAD_LOCK, from_pretrained


class UnsupportedGGUF(ValueError):
    """A GGUF file this installation cannot turn into a transformers model (said why, and what would)."""


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str
    name: str
    tensor_types: dict  # quantization type name -> tensor count
    context_length: int | None
    has_chat_template: bool


def _field(reader, key, default=None):
    field = reader.fields.get(key)
    if field is None or not field.data:
        return default
    value = field.parts[field.data[0]]
    if field.types and field.types[0].name == "STRING":
        return bytes(value).decode("utf-8", errors="replace")
    return value.tolist()[0] if hasattr(value, "tolist") else value


def supported_types() -> set[str]:
    """Quantization types the installed gguf package can dequantize (F32/F16 plus its codecs)."""
    from gguf import quants

    traits = getattr(quants, "_type_traits", {})
    return {"F32", "F16"} | {qtype.name for qtype in traits}


def inspect_gguf(path) -> GGUFInfo:
    """Read the header of a .gguf file; raise UnsupportedGGUF for a file transformers cannot load."""
    try:
        from gguf import GGUFReader
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError as error:  # pragma: no cover - the ml requirements carry gguf
        raise UnsupportedGGUF(f"reading GGUF needs the 'gguf' package ({error})") from None
    path = Path(path)
    try:
        reader = GGUFReader(str(path))
    except Exception as error:  # a truncated or foreign file: the gguf parser raises many kinds
        raise UnsupportedGGUF(f"{path.name} is not a readable GGUF file ({type(error).__name__}: {error})") from None
    architecture = _field(reader, "general.architecture", "")
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UnsupportedGGUF(f"{path.name}: architecture {architecture!r} is not one transformers loads from GGUF "
                              f"(supported: {', '.join(sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ('general', 'tokenizer')))})")
    types = Counter(t.tensor_type.name for t in reader.tensors)
    unsupported = sorted(set(types) - supported_types())
    if unsupported:
        raise UnsupportedGGUF(f"{path.name}: quantization {', '.join(unsupported)} cannot be dequantized by this "
                              f"installation (gguf package {_gguf_version()}); supported: {', '.join(sorted(supported_types()))}. "
                              "Convert the model to one of those (e.g. Q8_0 or F16) with llama.cpp first.")
    context = _field(reader, f"{architecture}.context_length")
    return GGUFInfo(architecture, _field(reader, "general.name", path.stem), dict(types),
                    int(context) if context else None, "tokenizer.chat_template" in reader.fields)


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def convert_gguf(path, out_dir, *, dtype: torch.dtype = torch.float32,
                 on_progress: Callable[[float, str], None] | None = None) -> GGUFInfo:
    """Dequantize `path` into `out_dir` (safetensors + config + tokenizer with its chat template).
    Written into a sibling temp folder and renamed at the end, so a failed or killed conversion never
    leaves a half model where a model is expected. Raises UnsupportedGGUF before loading anything."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    report = on_progress or (lambda fraction, message: None)
    path, out_dir = Path(path), Path(out_dir)
    info = inspect_gguf(path)
    report(0.05, f"{info.architecture}, {sum(info.tensor_types.values())} tensors "
                 f"({', '.join(f'{k} x{v}' for k, v in sorted(info.tensor_types.items()))})")
    work = out_dir.with_name(out_dir.name + f".partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        tokenizer.save_pretrained(work)
        report(0.15, "tokenizer and chat template saved" if info.has_chat_template else "tokenizer saved (no chat template)")
        quantized = from_pretrained(AutoModelForCausalLM, str(path.parent), gguf_file=path.name, dtype=dtype)
        report(0.75, "weights dequantized")
        config = quantized.config.to_dict()
        config.pop("quantization_config", None)
        plain_config = AutoConfig.for_model(**config)
        with LOAD_LOCK, torch.device("meta"):  # from_config swaps module functions as a load does
            plain = AutoModelForCausalLM.from_config(plain_config, dtype=dtype)
        plain.load_state_dict(quantized.state_dict(), assign=True, strict=True)
        if getattr(plain_config, "tie_word_embeddings", False):
            plain.tie_weights()
        plain.generation_config = quantized.generation_config
        del quantized
        plain.save_pretrained(work, safe_serialization=True)
        report(0.95, "safetensors written")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report(1.0, f"converted into {out_dir}")
    return info
