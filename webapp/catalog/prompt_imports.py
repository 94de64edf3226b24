"""Large prompt files import in the background: the upload is saved under the data dir, a
PromptImport job is queued on the default queue, and the worker validates the file (importers.py:
line-numbered, all errors at once) and stores it in one transaction (all or nothing), reporting its
stage as it goes; the page polls the job. Small files keep the in-page preview (catalog/views.py)."""
import secrets
from pathlib import Path

from django.conf import settings
from django.db import transaction

from webapp import lifecycle
from webapp.catalog import importers
from webapp.catalog.models import PromptImport
from webapp.celery import enqueue

TASK = "workers.tasks.catalog.import_prompts"
BACKGROUND_BYTES = 2 * 1024 * 1024  # above this an upload imports in the background
STEPS = ("reading", "validating", "storing")

JOBS = lifecycle.JobKind(PromptImport, task=TASK, publish=lambda job: None)  # the page polls; no socket needed


def prompt_import_start(*, project, upload, prompt_set_name: str, default_split: str, created_by=None) -> PromptImport:
    """Saves the upload (streamed to disk, never whole in memory) and queues its import."""
    folder = Path(settings.DATA_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"p{project.pk}-{secrets.token_hex(12)}{Path(upload.name).suffix.lower()}"
    with open(path, "wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)
    with transaction.atomic():
        job = PromptImport.objects.create(project=project, prompt_set_name=prompt_set_name.strip(), filename=upload.name[:300],
                                          path=str(path), size_bytes=upload.size, default_split=default_split,
                                          progress_total=len(STEPS), stage="queued", created_by=created_by)
        enqueue(TASK, job.pk)
    return job


def prompt_import_run(*, job: PromptImport, attempt: int) -> dict:
    """The worker's part: validate, then store; a file with errors imports nothing and the job
    fails with every error listed. Returns the columns to store on success."""
    path = Path(job.path)
    lifecycle.stop_unless_go(JOBS.progress(job, attempt=attempt, done=0, stage=f"reading {job.size_bytes / 2**20:.1f} MB"))
    data = path.read_bytes()
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    lifecycle.stop_unless_go(JOBS.progress(job, attempt=attempt, done=1, stage=f"validating {lines:,} lines"))
    result = importers.parse_upload(data, filename=job.filename, default_split=job.default_split)
    if not result.ok:
        PromptImport.objects.filter(pk=job.pk).update(errors=result.errors)
        path.unlink(missing_ok=True)
        raise ValueError(f"{len(result.errors)} problem(s) in the file; nothing was imported")
    lifecycle.stop_unless_go(JOBS.progress(job, attempt=attempt, done=2, stage=f"storing {len(result.rows):,} prompts"))
    prompt_set, created, duplicates = importers.prompts_import(project=job.project, prompt_set_name=job.prompt_set_name,
                                                               rows=result.rows)
    path.unlink(missing_ok=True)
    return {"prompt_set": prompt_set, "created_count": created, "duplicate_count": duplicates, "progress_done": len(STEPS),
            "stage": f"imported {created:,} prompts"}


def status_of(job: PromptImport) -> dict:
    return {"status": job.status, "stage": job.stage, "done": job.progress_done, "total": job.progress_total,
            "errors": job.errors[: importers.MAX_ERRORS + 1], "error": job.error, "created": job.created_count,
            "duplicates": job.duplicate_count, "prompt_set": job.prompt_set_id}
