"""Writes for training runs: the lifecycle (claim with one conditional UPDATE, heartbeat, finish)
and the stale-run reaper. Tasks and views call these; nothing else changes a run's status."""
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from webapp.training.models import RunStatus, TrainingRun


def run_claim(*, run_id: int, worker: str) -> int | None:
    """queued → running in one conditional UPDATE. Returns the claim's attempt number, or None
    when somebody else claimed it (or it is no longer queued)."""
    now = timezone.now()
    updated = TrainingRun.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, worker=worker, heartbeat_at=now, started_at=now, attempt=F("attempt") + 1,
        error="", traceback="")
    if not updated:
        return None
    return TrainingRun.objects.values_list("attempt", flat=True).get(id=run_id)


def run_heartbeat(*, run_id: int, attempt: int, **fields) -> bool:
    """Beats the heartbeat (and stores progress fields). False when this claim was lost, e.g. the
    reaper failed the run meanwhile: the worker must then stop."""
    return bool(TrainingRun.objects.filter(id=run_id, attempt=attempt, status=RunStatus.RUNNING).update(
        heartbeat_at=timezone.now(), **fields))


def runs_reap_stale(*, now=None) -> int:
    """Marks running runs whose heartbeat went silent as failed. Returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    return TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=RunStatus.FAILED, finished_at=now,
        error=f"The worker stopped beating its heartbeat for over {settings.RUN_STALE_AFTER_SECONDS}s (worker died?). "
              "Resume continues from the last checkpoint.")
