"""Writes for the catalog: registering model versions (with their parameter count read from the
safetensors headers, no torch needed; user-given sources checked against the allowed model roots)
and storing prompts de-duplicated by content hash."""
import hashlib
import json
import re
import struct
from math import prod
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp import json_bounds
from webapp.catalog.models import ModelVersion, Prompt, PromptSet

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Folders of DATA_DIR the server writes for itself (see settings.DATA_DIR's users).
INTERNAL_DATA_AREAS = ("cache", "imports", "snapshots", "exports", "uploads")


# The safetensors format itself refuses headers over 100 MB; a real 70B model's header is a few MB.
SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024
MAX_TENSOR_ELEMENTS = 2 ** 53  # far past any real model; keeps the sum inside parameter_count's bigint


def _safetensors_header(file: Path) -> dict:
    """The JSON header of one safetensors file, validated: the 8-byte little-endian length, bounded
    and within the file; a JSON object whose tensors carry shapes of non-negative integers."""
    with open(file, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise ValidationError(f"{file.name} is not a safetensors file (shorter than its 8-byte header length).")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(SAFETENSORS_HEADER_MAX, file.stat().st_size - 8):
            raise ValidationError(f"{file.name} is not a valid safetensors file (header length {header_len} bytes "
                                  "exceeds the file or the 100 MB limit).")
        raw = fh.read(header_len)
    try:
        header = json_bounds.loads(raw, max_depth=4)  # {name: {dtype, shape: [...], data_offsets: [...]}}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError(f"{file.name} is not a valid safetensors file (its header is not JSON).") from None
    except ValueError as exc:  # nested too deep, NaN, a number out of range
        raise ValidationError(f"{file.name} is not a valid safetensors file (its header: {exc}).") from None
    if not isinstance(header, dict):
        raise ValidationError(f"{file.name} is not a valid safetensors file (its header is not a JSON object).")
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        if not isinstance(shape, list) or len(shape) > 16 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ValidationError(f"{file.name} is not a valid safetensors file (tensor {name[:80]!r} has no valid shape).")
        if prod(shape) > MAX_TENSOR_ELEMENTS:
            raise ValidationError(f"{file.name} is not a valid safetensors file (tensor {name[:80]!r} has shape "
                                  f"{str(shape)[:80]}: over {MAX_TENSOR_ELEMENTS:,} elements, more than any file holds).")
    return header


def safetensors_parameter_count(directory: str) -> int | None:
    """Sum of tensor sizes over every *.safetensors file in a local model directory; a
    ValidationError names the first malformed file."""
    path = Path(directory)
    if not path.is_dir():
        return None
    total = 0
    files = sorted(path.glob("*.safetensors"))
    for file in files:
        header = _safetensors_header(file)
        total += sum(prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
        if total > MAX_TENSOR_ELEMENTS:
            raise ValidationError(f"{file.name}: the model's tensors add up to over {MAX_TENSOR_ELEMENTS:,} parameters; "
                                  "its headers cannot be right.")
    return total if files else None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def path_under_model_roots(source: str) -> Path:
    """`source` as a resolved local path (relative to the data dir, symlinks followed), refused with
    a ValidationError unless it lies under one of MODEL_ROOTS."""
    path = Path(source.strip()).expanduser()
    path = (path if path.is_absolute() else Path(settings.DATA_DIR) / path).resolve()
    roots = [Path(r).resolve() for r in settings.MODEL_ROOTS]
    if not any(_inside(path, root) for root in roots):
        raise ValidationError(f"{source} is outside the model directories this server allows "
                              f"({', '.join(map(str, roots))}; set DISTILLERY_MODEL_ROOTS to add one).")
    return path


def model_source_check(*, project, source: str) -> str:
    """The source a user may register in `project`, normalised; a ValidationError says why not.
    A hub id (org/name) passes as it is. A local directory is resolved (relative paths against the
    data dir, never the server's working directory; symlinks followed) and must lie under one of
    MODEL_ROOTS; inside the data dir, run outputs only of this project's own runs, and never the
    shared caches or staged uploads (they hold other projects' models and data)."""
    source = source.strip()
    if HUB_ID.match(source) and not source.startswith("."):
        return source
    path = path_under_model_roots(source)
    data = Path(settings.DATA_DIR).resolve()
    if _inside(path, data) and path != data:
        area, *rest = path.relative_to(data).parts
        if area == "runs":
            TrainingRun = ModelVersion._meta.get_field("produced_by").related_model  # no import cycle
            if not rest or not rest[0].isdigit() or not TrainingRun.objects.filter(id=int(rest[0]), project=project).exists():
                raise ValidationError(f"{source} is not an output of one of this project's training runs.")
        elif area in INTERNAL_DATA_AREAS:
            raise ValidationError(f"{source} is internal server data, not a model directory you can register.")
    if not (path / "config.json").is_file():
        raise ValidationError(f"{source} is not a model directory (no config.json there).")
    safetensors_parameter_count(str(path))  # a malformed weights file is refused here, not at first use
    return str(path)


def model_version_register(*, project, name: str, role: str, source: str, revision: str = "", stage: str = "base",
                           parent=None, produced_by=None, snapshot=None, method: str = "", config=None) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project, name=name, role=role, source=source, revision=revision, stage=stage, parent=parent,
        produced_by=produced_by, snapshot=snapshot, method=method, config=config or {},
        parameter_count=safetensors_parameter_count(source))


def prompt_content_hash(*, text: str = "", messages=None) -> str:
    payload = json.dumps({"text": text.strip(), "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def prompts_bulk_create(*, prompt_set: PromptSet, rows: list[dict]) -> tuple[int, int]:
    """Stores already-validated rows ({text|messages, split, tags, metadata}) atomically, skipping
    prompts already in the set (and repeats within `rows`). Returns (created, duplicates)."""
    existing = set(Prompt.objects.filter(prompt_set=prompt_set).values_list("content_hash", flat=True))
    new = []
    for row in rows:
        digest = prompt_content_hash(text=row.get("text", ""), messages=row.get("messages"))
        if digest in existing:
            continue
        existing.add(digest)
        new.append(Prompt(prompt_set=prompt_set, text=row.get("text", ""), messages=row.get("messages"),
                          split=row.get("split", "train"), tags=row.get("tags", []), metadata=row.get("metadata", {}),
                          content_hash=digest))
    with transaction.atomic():
        Prompt.objects.bulk_create(new, batch_size=1000)
    return len(new), len(rows) - len(new)
