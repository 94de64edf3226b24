"""Registering a model from a GGUF file (llama.cpp's format): the web side checks where the file is
(the same model roots as a model directory) and that it starts like a GGUF file, then queues a
GGUFConversion on the gpu queue; the worker (workers/tasks/gpu/conversion.py) dequantizes it into
DATA_DIR/models/ and calls back here to store progress, the new model version and its weights hash.
Whether the quantization is supported is the worker's check (the web process has no gguf package);
its clear message becomes the job's error on the catalog page."""
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp import lifecycle
from webapp.catalog.models import GGUFConversion, ModelVersion
from webapp.catalog.services import INTERNAL_DATA_AREAS, _inside, model_version_register, path_under_model_roots
from webapp.celery import enqueue

GGUF_MAGIC = b"GGUF"
TASK = "workers.tasks.gpu.conversion.convert_gguf_model"


def gguf_source_check(*, source: str) -> Path:
    """The resolved .gguf path a user may convert; a ValidationError says why not. Relative paths
    resolve against the data dir; the file must lie under MODEL_ROOTS, outside internal data areas."""
    path = path_under_model_roots(source)
    data = Path(settings.DATA_DIR).resolve()
    if _inside(path, data) and path != data and path.relative_to(data).parts[0] in INTERNAL_DATA_AREAS:
        raise ValidationError(f"{source} is internal server data, not a GGUF file you can convert.")
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise ValidationError(f"{source} is not a .gguf file on this server.")
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ValidationError(f"{source} does not start with the GGUF magic bytes: not a GGUF file.")
    return path


def gguf_conversion_create(*, project, name: str, role: str, stage: str, source: str, created_by) -> GGUFConversion:
    """Queue the conversion of a checked GGUF file; the model version is registered when it succeeds.
    A ValidationError names the field at fault (name or source)."""
    if ModelVersion.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": f"A model version named {name!r} already exists in this project."})
    try:
        path = gguf_source_check(source=source)
    except ValidationError as exc:
        raise ValidationError({"source": exc.messages}) from None
    with transaction.atomic():
        conversion = GGUFConversion.objects.create(project=project, name=name, role=role, stage_of_teacher=stage,
                                                   gguf_path=str(path), created_by=created_by)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "model"
        conversion.target_dir = str(Path(settings.DATA_DIR) / "models" / f"{project.slug}-{conversion.pk}-{slug}")
        conversion.save(update_fields=["target_dir"])
        enqueue(TASK, conversion.pk)
    return conversion


def gguf_conversion_claim(*, conversion_id: int, worker: str) -> int | None:
    return lifecycle.job_claim(GGUFConversion, pk=conversion_id, worker=worker)


def gguf_conversion_progress(*, conversion_id: int, attempt: int, fraction: float, message: str) -> str:
    """Progress in per-mille of the conversion and the step it is at."""
    return lifecycle.job_progress(GGUFConversion, pk=conversion_id, attempt=attempt, done=int(fraction * 1000),
                                  total=1000, stage=message)


def gguf_conversion_succeed(*, conversion_id: int, attempt: int, weights_digest: dict) -> ModelVersion | None:
    """Register the converted directory as a model version (with its weights hash) and finish the job;
    None when the claim was lost meanwhile (nothing is registered then)."""
    with transaction.atomic():
        conversion = GGUFConversion.objects.select_for_update().get(pk=conversion_id)
        if conversion.status != lifecycle.JobStatus.RUNNING or conversion.attempt != attempt:
            return None
        version = model_version_register(project=conversion.project, name=conversion.name, role=conversion.role,
                                         stage=conversion.stage_of_teacher, source=conversion.target_dir,
                                         config={"converted_from": conversion.gguf_path})
        ModelVersion.objects.filter(pk=version.pk).update(weights_hash=weights_digest)
        lifecycle.job_finish(GGUFConversion, pk=conversion_id, attempt=attempt, model_version=version,
                             stage="converted", progress_done=1000)
    return version


def gguf_conversion_fail(*, conversion_id: int, attempt: int, error: str) -> bool:
    return lifecycle.job_finish(GGUFConversion, pk=conversion_id, attempt=attempt, status=lifecycle.JobStatus.FAILED,
                                error=error)


def gguf_conversions_for(*, project):
    return GGUFConversion.objects.filter(project=project).select_related("model_version")[:20]
