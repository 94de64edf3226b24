"""Writes for the catalog: registering model versions (with their parameter count read from the
safetensors headers, no torch needed) and storing prompts de-duplicated by content hash."""
import hashlib
import json
import struct
from math import prod
from pathlib import Path

from django.db import transaction

from webapp.catalog.models import ModelVersion, Prompt, PromptSet


def safetensors_parameter_count(directory: str) -> int | None:
    """Sum of tensor sizes over every *.safetensors file in a local model directory."""
    path = Path(directory)
    if not path.is_dir():
        return None
    total = 0
    files = sorted(path.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(header_len))
        total += sum(prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total if files else None


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
