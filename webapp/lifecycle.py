"""The one lifecycle every queued job shares: generation jobs, judge jobs, training runs,
evaluations, loop rounds (and GGUF conversions) move queued → running → succeeded / failed /
cancelled, and a failed or cancelled job goes back to queued by a rerun. `Job` is the abstract model
with the shared columns; the job_* functions below are the only writers of those columns (plain
values in and out, no events); `JobKind` binds them to one kind's model, task and live event, and
`job_run` / `JobKind.run` is the whole of a gpu task around the kind's work. docs/lifecycle.md.

The rules, the same for every kind:
- claim: queued → running in one conditional UPDATE that also bumps `attempt`. The attempt number
  is the claim: every later write (progress, finish) names it, so a worker whose claim was lost
  (reaped, then rerun and claimed by another worker) can no longer write anything.
- progress: `job_progress` beats `heartbeat_at`, stores done/total/stage, computes `eta_at` from this
  attempt's rate, and answers GO, CANCEL (cooperative cancel was asked) or LOST (stop, write nothing).
  `JobBeat` beats from a daemon thread so a long model load or batch does not look dead.
- cancel: a queued job is cancelled at once; a running one gets `cancel_requested`, which the worker
  reads at its next progress call and ends the job as cancelled.
- finish: only a RUNNING job of the same attempt is finished, so a reaped or cancelled job is never
  overwritten by a late worker.
- reap: running jobs whose heartbeat is older than the kind's grace (`STALE_AFTER_SETTING`, a
  setting in seconds) are failed with a message that says how to continue (`RERUN_HINT`).
- rerun: failed / cancelled → queued, the task enqueued after commit; the next claim is attempt + 1.

How a kind adopts it: its model inherits `Job` (its Meta from `Job.Meta`, extending
`Job.Meta.constraints`), sets `STALE_AFTER_SETTING` and `RERUN_HINT` (and `PROGRESS_FIELDS` when its
progress columns have other names, as training's step/total_steps); its services bind
`JOBS = JobKind(Model, task=..., publish=...)` and expose cancel/rerun for views
(webapp/job_views.py); its task is `return JOBS.run(pk, work)`, where `work(job, attempt)` calls
`stop_unless_go(JOBS.progress(...))` between batches; workers/tasks/maintenance.py lists `JOBS.reap`.
Training runs keep their own worker-side wrappers (RunRecorder, checkpoints) over the same functions.
"""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
RERUNNABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
GO, CANCEL, LOST = "go", "cancel", "lost"  # what job_progress tells the worker


class Job(models.Model):
    """The columns every job kind shares."""

    STALE_AFTER_SETTING = "JOB_STALE_AFTER_SECONDS"
    RERUN_HINT = "Rerun it to continue."
    PROGRESS_FIELDS = ("progress_done", "progress_total")

    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=0, help_text="Incremented at each claim; a stale worker loses its claim.")
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False, help_text="Cooperative cancel, read at the next progress call.")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_at_claim = models.PositiveIntegerField(default=0, help_text="Where this attempt started (for the ETA).")
    stage = models.CharField(max_length=100, blank=True)
    eta_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=JobStatus.values),
                                              name="%(app_label)s_%(class)s_status_valid")]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="%(class)s_reap_idx")]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def can_rerun(self) -> bool:
        return self.status in RERUNNABLE


def eta_seconds(job) -> int | None:
    """Seconds left by this attempt's rate (job_progress keeps eta_at), for live messages; None when unknown."""
    if job.eta_at is None or job.status != JobStatus.RUNNING:
        return None
    return max(0, round((job.eta_at - timezone.now()).total_seconds()))


def stale_after_seconds(model) -> int:
    return int(getattr(settings, model.STALE_AFTER_SETTING))


def job_claim(model, *, pk: int, worker: str = "", **fields) -> int | None:
    """queued → running in one conditional UPDATE. Returns this claim's attempt number, or None when
    the job is not queued (another worker has it, it finished, or it was cancelled meanwhile)."""
    now = timezone.now()
    done_field = model.PROGRESS_FIELDS[0]
    claimed = model.objects.filter(pk=pk, status=JobStatus.QUEUED, cancel_requested=False).update(
        status=JobStatus.RUNNING, attempt=F("attempt") + 1, worker=worker[:200], started_at=now, heartbeat_at=now,
        finished_at=None, eta_at=None, error="", progress_at_claim=F(done_field), **fields)
    if not claimed:
        model.objects.filter(pk=pk, status=JobStatus.QUEUED, cancel_requested=True).update(
            status=JobStatus.CANCELLED, finished_at=now, cancel_requested=False)
        return None
    return model.objects.filter(pk=pk).values_list("attempt", flat=True).get()


def _eta(now, started_at, base: int, done: int, total: int):
    if not started_at or total <= 0 or done <= base or done >= total:
        return None
    rate = (now - started_at).total_seconds() / (done - base)  # seconds per unit in this attempt
    return now + timedelta(seconds=rate * (total - done))


def job_progress(model, *, pk: int, attempt: int, done: int | None = None, total: int | None = None,
                 stage: str | None = None, **fields) -> str:
    """Beats the heartbeat and stores progress (and any extra columns). Returns GO, CANCEL (a cancel
    was asked: stop cooperatively, then finish as cancelled) or LOST (the claim is gone: stop and
    write nothing more)."""
    row = model.objects.filter(pk=pk, attempt=attempt, status=JobStatus.RUNNING).values(
        "started_at", "progress_at_claim", "cancel_requested", *model.PROGRESS_FIELDS).first()
    if row is None:
        return LOST
    now = timezone.now()
    done_field, total_field = model.PROGRESS_FIELDS
    updates = {"heartbeat_at": now, **fields}
    if done is not None:
        updates[done_field] = done
    if total is not None:
        updates[total_field] = total
    if stage is not None:
        updates["stage"] = stage[:100]
    if done is not None or total is not None:
        updates["eta_at"] = _eta(now, row["started_at"], row["progress_at_claim"],
                                 done if done is not None else row[done_field], total if total is not None else row[total_field])
    if not model.objects.filter(pk=pk, attempt=attempt, status=JobStatus.RUNNING).update(**updates):
        return LOST
    cancel = row["cancel_requested"] or model.objects.filter(pk=pk, cancel_requested=True).exists()
    return CANCEL if cancel else GO


def job_heartbeat(model, *, pk: int, attempt: int) -> bool:
    """Only the heartbeat (from JobBeat's thread). False once the claim is lost."""
    return bool(model.objects.filter(pk=pk, attempt=attempt, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now()))


def job_cancel_requested(model, *, pk: int) -> bool:
    return model.objects.filter(pk=pk, cancel_requested=True).exists()


def job_finish(model, *, pk: int, attempt: int, status: str = JobStatus.SUCCEEDED, error: str = "", **fields) -> bool:
    """running (this attempt) → succeeded / failed / cancelled. False, and nothing written, when the
    job is no longer this worker's: the reaper failed it, or it was rerun and claimed again."""
    if status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValueError(f"a job finishes as succeeded, failed or cancelled, not {status!r}")
    now = timezone.now()
    return bool(model.objects.filter(pk=pk, attempt=attempt, status=JobStatus.RUNNING).update(
        status=status, error=error[:5000], finished_at=now, heartbeat_at=now, eta_at=None, cancel_requested=False,
        **fields))


def job_cancel(model, *, pk: int, **fields) -> str:
    """A queued job is cancelled at once (returns "cancelled"); a running one is asked to stop at
    its next progress call (returns "requested"); a finished one is left alone (returns "")."""
    if model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now(), eta_at=None, **fields):
        return "cancelled"
    if model.objects.filter(pk=pk, status=JobStatus.RUNNING).update(cancel_requested=True):
        return "requested"
    return ""


def job_rerun(model, *, pk: int, **fields) -> bool:
    """failed / cancelled → queued. The caller enqueues the task in the same transaction (the task
    is idempotent: it continues from what the earlier attempts stored)."""
    return bool(model.objects.filter(pk=pk, status__in=RERUNNABLE).update(
        status=JobStatus.QUEUED, cancel_requested=False, error="", worker="", heartbeat_at=None, started_at=None,
        finished_at=None, eta_at=None, **fields))


def jobs_reap_stale(model, *, now=None, **fields) -> list[int]:
    """Fails running jobs of `model` whose heartbeat is older than the kind's grace, so a job whose
    worker died does not spin forever in the UI. Returns the ids it failed."""
    now = now or timezone.now()
    grace = stale_after_seconds(model)
    stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=now - timedelta(seconds=grace))
    ids = list(stale.values_list("pk", flat=True))
    if not ids:
        return []
    stale.filter(pk__in=ids).update(
        status=JobStatus.FAILED, finished_at=now, eta_at=None, cancel_requested=False,
        error=f"No heartbeat from its worker for over {grace}s (the worker died or hung). {model.RERUN_HINT}", **fields)
    return list(model.objects.filter(pk__in=ids, status=JobStatus.FAILED, finished_at=now).values_list("pk", flat=True))


class JobBeat:
    """Beats a claimed job's heartbeat from a daemon thread while the worker is busy in one long call
    (a model load, a batch), so the reaper's grace can stay short. `lost` turns True once the claim
    is gone. Use as a context manager around the task body."""

    def __init__(self, model, *, pk: int, attempt: int, interval: float | None = None):
        import threading

        self.model, self.pk, self.attempt, self.lost = model, pk, attempt, False
        self.interval = interval or max(0.5, min(5.0, stale_after_seconds(model) / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{model.__name__}-{pk}-beat", daemon=True)

    def _loop(self):
        from django.db import close_old_connections, connection

        try:
            while not self._stop.wait(self.interval):
                try:
                    self.lost = not job_heartbeat(self.model, pk=self.pk, attempt=self.attempt) or self.lost
                except Exception:  # the database briefly away: the reaper's grace covers a few misses
                    close_old_connections()
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        return False


class JobKind:
    """One kind's lifecycle steps bound to its model, its task and its live event (`publish(job)`),
    so each app's services are one line per step and every kind behaves the same."""

    def __init__(self, model, *, task: str, publish):
        self.model, self.task, self.publish = model, task, publish

    def claim(self, pk: int, *, worker: str = "", **fields) -> int | None:
        attempt = job_claim(self.model, pk=pk, worker=worker, **fields)
        self.publish(self.model.objects.get(pk=pk))  # running, or cancelled while it was queued
        return attempt

    def progress(self, job, *, attempt: int, **progress) -> str:
        signal = job_progress(self.model, pk=job.pk, attempt=attempt, **progress)
        job.refresh_from_db()
        self.publish(job)
        return signal

    def finish(self, job, *, attempt: int, status: str = JobStatus.SUCCEEDED, error: str = "", **fields) -> bool:
        finished = job_finish(self.model, pk=job.pk, attempt=attempt, status=status, error=error, **fields)
        job.refresh_from_db()
        self.publish(job)
        return finished

    def cancel(self, job, **fields) -> str:
        outcome = job_cancel(self.model, pk=job.pk, **fields)
        job.refresh_from_db()
        self.publish(job)
        return outcome

    def rerun(self, job, **fields):
        """failed / cancelled → queued, the task enqueued after commit; ValidationError otherwise."""
        from django.core.exceptions import ValidationError
        from django.db import transaction
        from django.utils.text import capfirst

        from webapp.celery import enqueue

        with transaction.atomic():
            if not job_rerun(self.model, pk=job.pk, **fields):
                raise ValidationError(f"{capfirst(self.model._meta.verbose_name)} {job.pk} is {job.status}; only failed "
                                      "or cancelled jobs can be rerun.")
            enqueue(self.task, job.pk)
            job.refresh_from_db()
            self.publish(job)
        return job

    def run(self, pk: int, work, **claim_fields) -> str:
        """The whole of a gpu task: claim the job as this worker process, then `work(job, attempt)`
        through job_run. Returns "not claimed" when another worker has it or it is no longer queued."""
        import os
        import socket

        attempt = self.claim(pk, worker=f"{socket.gethostname()}:{os.getpid()}", **claim_fields)
        if attempt is None:
            return "not claimed"
        job = self.model.objects.get(pk=pk)
        return job_run(self, job, attempt, lambda: work(job, attempt))

    def reap(self) -> int:
        ids = jobs_reap_stale(self.model)
        for job in self.model.objects.filter(pk__in=ids):
            self.publish(job)
        return len(ids)


class Stopped(Exception):
    """Raised from inside a job's work when job_progress said CANCEL or LOST, to leave it at once."""

    def __init__(self, signal: str):
        super().__init__(signal)
        self.signal = signal


def stop_unless_go(signal: str) -> None:
    if signal != GO:
        raise Stopped(signal)


def job_run(kind: JobKind, job, attempt: int, work) -> str:
    """Runs a claimed job's `work()` with a heartbeat thread and ends it by how it went: succeeded,
    cancelled (work raised Stopped(CANCEL)), failed with the error's text (any other exception, logged
    with its traceback), or nothing at all when the claim was lost (Stopped(LOST): the job is no
    longer this worker's). `work` returns extra columns to store on success (or None). Returns the
    outcome as a word, for the task's result."""
    import logging

    try:
        with JobBeat(kind.model, pk=job.pk, attempt=attempt):
            fields = work() or {}
    except Stopped as stop:
        if stop.signal == CANCEL:
            kind.finish(job, attempt=attempt, status=JobStatus.CANCELLED)
            return "cancelled"
        return "claim lost"
    except Exception as exc:  # the job's page shows why instead of a job stuck in "running"
        logging.getLogger("workers").exception("%s %s failed", kind.model.__name__, job.pk)
        kind.finish(job, attempt=attempt, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return "failed"
    return "succeeded" if kind.finish(job, attempt=attempt, **fields) else "claim lost"
