"""Freezing a large project's snapshot in the background: above BACKGROUND_COMPARISONS comparisons
the snapshots page queues a SnapshotFreeze job on the default queue and answers at once; the worker
runs the same streaming snapshots.snapshot_freeze, reporting its pairs so far as the job's progress
(written from a side thread on its own connection, since the freeze is one transaction whose writes
nobody sees before it commits). Smaller projects freeze within the request, as before."""
import threading

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from webapp import lifecycle
from webapp.annotation import events, snapshots
from webapp.annotation.models import PreferenceSnapshot, SnapshotFreeze
from webapp.celery import enqueue

TASK = "workers.tasks.annotation.freeze_snapshot"
BACKGROUND_COMPARISONS = 20_000  # about two seconds of freezing here; above it the page does not wait

JOBS = lifecycle.JobKind(SnapshotFreeze, task=TASK, publish=lambda job: None)  # the page shows the stage on reload


def snapshot_freeze_start(*, project, name: str, rule: str = "majority", tie_policy: str = "drop", source_filter: str = "both",
                          created_by=None) -> PreferenceSnapshot | SnapshotFreeze:
    """The snapshot, frozen now, or (for a large project) the queued job that will freeze it."""
    counts = events.counters(project.pk)
    if counts["pending"] + counts["done"] + counts["disputed"] <= BACKGROUND_COMPARISONS:
        return snapshots.snapshot_freeze(project=project, name=name, rule=rule, tie_policy=tie_policy, source_filter=source_filter,
                                         created_by=created_by)
    if PreferenceSnapshot.objects.filter(project=project, name=name).exists() or \
            SnapshotFreeze.objects.filter(project=project, name=name, status__in=lifecycle.ACTIVE).exists():
        raise ValidationError(f"A snapshot named {name!r} already exists or is being frozen.")
    with transaction.atomic():
        job = SnapshotFreeze.objects.create(project=project, name=name, rule=rule, tie_policy=tie_policy, source_filter=source_filter,
                                            created_by=created_by, progress_total=counts["done"], stage="queued")
        enqueue(TASK, job.pk)
    return job


def snapshot_freeze_run(*, job: SnapshotFreeze, attempt: int) -> dict:
    """The worker's part: the freeze, its progress reported once a second by a side thread."""
    latest, signal, stop = {"done": 0, "stage": "reading votes"}, {"value": lifecycle.GO}, threading.Event()

    def report():
        try:
            while not stop.wait(1.0):
                signal["value"] = JOBS.progress(job, attempt=attempt, done=latest["done"], stage=latest["stage"])
        finally:
            connection.close()

    def progress(done, stage):
        latest.update(done=done, stage=stage)
        lifecycle.stop_unless_go(signal["value"])

    reporter = threading.Thread(target=report, name=f"freeze-{job.pk}-progress", daemon=True)
    reporter.start()
    try:
        snapshot = snapshots.snapshot_freeze(project=job.project, name=job.name, rule=job.rule, tie_policy=job.tie_policy,
                                             source_filter=job.source_filter, created_by=job.created_by, progress=progress)
    finally:
        stop.set()
        reporter.join(timeout=10)
    return {"snapshot": snapshot, "progress_done": snapshot.pair_count, "stage": f"froze {snapshot.pair_count:,} pairs"}
