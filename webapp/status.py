"""The one lifecycle every queued job shares (generation jobs, training runs, evaluations, judge
jobs): queued → running → succeeded / failed / cancelled."""
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


def jobs_reap_stale(model, *, stale_after_seconds: int, now=None) -> int:
    """Marks running rows of `model` (a job model with status, heartbeat_at, finished_at and error)
    whose heartbeat went silent as failed, so a job whose worker died does not spin forever in the
    UI. Returns how many. A re-queued job resumes from what it already stored (tasks are idempotent)."""
    from datetime import timedelta

    from django.utils import timezone

    now = now or timezone.now()
    return model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=now - timedelta(seconds=stale_after_seconds)).update(
        status=JobStatus.FAILED, finished_at=now,
        error=f"No progress from its worker for over {stale_after_seconds}s (worker died?); run it again to continue.")
