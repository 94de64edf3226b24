"""The one job lifecycle (webapp/lifecycle.py), run over every kind of job through that kind's own
services: generation jobs, judge jobs, training runs, evaluations and loop rounds. Each kind: one
claim wins under concurrency; progress beats the heartbeat and gives an ETA; cancel is at once when
queued and cooperative when running; a reaped job is never overwritten by a late finish; the reaper
honours the kind's grace; a failed or cancelled job reruns as attempt 2. The SIGKILL drill (slow)
kills a real Celery worker process mid-job, reaps the job, reruns it on a fresh worker and checks
that it succeeds."""
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from webapp.annotation import judging
from webapp.annotation.models import JudgeJob
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.evaluation import loop_services
from webapp.evaluation import services as evaluation_services
from webapp.evaluation.models import Evaluation, LoopRound
from webapp.generation import services as generation_services
from webapp.generation.models import GenerationJob
from webapp.lifecycle import CANCEL, GO, LOST, JobStatus
from webapp.training import services as training_services
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _attempt(claim):
    """generation/judge claims return (job, attempt); the others the attempt."""
    return claim[1] if isinstance(claim, tuple) else claim


@dataclass
class Kind:
    model: type
    make: Callable  # (world) -> a queued row
    claim: Callable  # (pk) -> attempt | None
    progress: Callable  # (row, attempt, done, total) -> GO / CANCEL / LOST
    finish: Callable  # (row, attempt, status) -> bool
    cancel: Callable  # (row) -> truthy when it did something
    rerun: Callable  # (row) -> row
    reap: Callable  # () -> how many
    task: str
    grace_setting: str = "JOB_STALE_AFTER_SECONDS"


def _training_progress(row, attempt, done, total):
    ok = training_services.run_heartbeat(run_id=row.pk, attempt=attempt, step=done, total_steps=total)
    return (CANCEL if training_services.run_cancel_requested(run_id=row.pk) else GO) if ok else LOST


def _training_finish(row, attempt, status):
    if status == JobStatus.FAILED:
        return training_services.run_fail(run_id=row.pk, attempt=attempt, error="boom")
    if status == JobStatus.CANCELLED:
        training_services.run_stopped(run_id=row.pk, attempt=attempt, step=1, checkpoint_dir=None)
        return TrainingRun.objects.get(pk=row.pk).status == JobStatus.CANCELLED
    return training_services.run_succeed(run_id=row.pk, attempt=attempt, steps=2, final_dir=tempfile.mkdtemp(),
                                         metrics={"loss": 1.0}) is not None


KINDS = {
    "generation": Kind(
        GenerationJob, lambda w: GenerationJob.objects.create(project=w.project, prompt_set=w.prompt_set),
        lambda pk: _attempt(generation_services.generation_job_claim(job_id=pk)),
        lambda row, a, d, t: generation_services.generation_job_progress(job=row, attempt=a, done=d, total=t),
        lambda row, a, s: generation_services.generation_job_finish(job=row, attempt=a, status=s),
        lambda row: generation_services.generation_job_cancel(job=row),
        lambda row: generation_services.generation_job_rerun(job=row),
        generation_services.generation_jobs_reap_stale, generation_services.TASK),
    "judge": Kind(
        JudgeJob, lambda w: JudgeJob.objects.create(project=w.project, teacher=w.teacher, comparison_ids=[1]),
        lambda pk: _attempt(judging.judge_job_claim(job_id=pk)),
        lambda row, a, d, t: judging.judge_job_progress(job=row, attempt=a, done=d),
        lambda row, a, s: judging.judge_job_finish(job=row, attempt=a, status=s),
        lambda row: judging.judge_job_cancel(job=row),
        lambda row: judging.judge_job_rerun(job=row),
        judging.judge_jobs_reap_stale, judging.TASK),
    "training": Kind(
        TrainingRun, lambda w: TrainingRun.objects.create(project=w.project, name="r", method="dpo", student=w.student),
        lambda pk: training_services.run_claim(run_id=pk, worker="test"),
        _training_progress, _training_finish,
        lambda row: training_services.run_cancel(run=row),
        lambda row: training_services.run_resume(run=row),
        training_services.runs_reap_stale, training_services.TRAIN_TASK, "RUN_STALE_AFTER_SECONDS"),
    "evaluation": Kind(
        Evaluation, lambda w: Evaluation.objects.create(project=w.project, name="e", prompt_set=w.prompt_set, teacher=w.teacher),
        lambda pk: evaluation_services.evaluation_claim(evaluation_id=pk),
        lambda row, a, d, t: evaluation_services.JOBS.progress(row, attempt=a, stage="answers", done=d, total=t),
        lambda row, a, s: evaluation_services.JOBS.finish(row, attempt=a, status=s),
        lambda row: evaluation_services.evaluation_cancel(evaluation=row),
        lambda row: evaluation_services.evaluation_rerun(evaluation=row),
        evaluation_services.evaluations_reap_stale, evaluation_services.RUN_TASK),
    "loop_round": Kind(
        LoopRound, lambda w: LoopRound.objects.create(project=w.project, number=LoopRound.objects.count() + 1, student=w.student,
                                                      teacher=w.teacher, prompt_set=w.prompt_set),
        lambda pk: loop_services.loop_round_claim(round_id=pk),
        lambda row, a, d, t: loop_services.loop_round_progress(loop_round=row, attempt=a, stage="answers", done=d, total=t),
        lambda row, a, s: loop_services.loop_round_finish(loop_round=row, attempt=a, status=s),
        lambda row: loop_services.loop_round_cancel(loop_round=row),
        lambda row: loop_services.loop_round_rerun(loop_round=row),
        loop_services.loop_rounds_reap_stale, loop_services.ROUND_TASK),
}


class World:
    def __init__(self, project):
        self.project = project
        self.prompt_set = PromptSet.objects.create(project=project, name="p")
        self.teacher = ModelVersion.objects.create(project=project, name="t", role="teacher", source="/m/t")
        self.student = ModelVersion.objects.create(project=project, name="s", role="student", source="/m/s")


class SentTasks(list):
    """Stands in for the broker in the fast tests: records (task name, args) sent after commit."""

    def send_task(self, name, args=(), kwargs=None, **options):
        self.append((name, tuple(args)))


@pytest.fixture
def sent(monkeypatch):
    tasks = SentTasks()
    monkeypatch.setattr("webapp.celery.app", tasks)
    return tasks


@pytest.fixture
def world(project):
    return World(project)


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


def _row(kind, pk):
    return kind.model.objects.get(pk=pk)


def _age_heartbeat(kind, pk, seconds):
    kind.model.objects.filter(pk=pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def test_one_claim_wins_under_concurrency(kind, world, sent):
    row = kind.make(world)
    barrier, results = threading.Barrier(6), []

    def contender():
        try:
            barrier.wait()
            results.append(kind.claim(row.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=contender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [1] + [None] * 5
    row = _row(kind, row.pk)
    assert row.status == JobStatus.RUNNING and row.attempt == 1 and row.started_at and row.heartbeat_at


def test_progress_beats_the_heartbeat_and_gives_an_eta(kind, world, sent):
    row = kind.make(world)
    attempt = kind.claim(row.pk)
    kind.model.objects.filter(pk=row.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    _age_heartbeat(kind, row.pk, 30)
    assert kind.progress(_row(kind, row.pk), attempt, 2, 4) == GO
    row = _row(kind, row.pk)
    assert (timezone.now() - row.heartbeat_at).total_seconds() < 5
    done, total = (getattr(row, f) for f in kind.model.PROGRESS_FIELDS)
    if kind.model is JudgeJob:
        assert done == 2  # a judge job's total is its comparison count, fixed at creation
    else:
        assert (done, total) == (2, 4)
        # 2 units in ~10 s, 2 to go: about 10 s left
        assert 7 < (row.eta_at - timezone.now()).total_seconds() < 13


def test_cancel_is_immediate_when_queued_and_cooperative_when_running(kind, world, sent):
    queued = kind.make(world)
    kind.cancel(queued)
    assert _row(kind, queued.pk).status == JobStatus.CANCELLED
    assert kind.claim(queued.pk) is None  # a late worker finds nothing to do

    running = kind.make(world)
    attempt = kind.claim(running.pk)
    kind.cancel(_row(kind, running.pk))
    assert _row(kind, running.pk).status == JobStatus.RUNNING  # the worker stops at its next progress call
    assert kind.progress(_row(kind, running.pk), attempt, 1, 4) == CANCEL
    kind.finish(_row(kind, running.pk), attempt, JobStatus.CANCELLED)
    row = _row(kind, running.pk)
    assert row.status == JobStatus.CANCELLED and row.finished_at and not row.cancel_requested


def test_a_reaped_job_is_never_overwritten_by_its_late_worker(kind, world, sent, settings):
    """B16: training's run_succeed and the generation/judge finish functions once overwrote a reaped job."""
    setattr(settings, kind.grace_setting, 60)
    row = kind.make(world)
    attempt = kind.claim(row.pk)
    _age_heartbeat(kind, row.pk, 120)
    assert kind.reap() == 1
    reaped = _row(kind, row.pk)
    assert reaped.status == JobStatus.FAILED and "No heartbeat" in reaped.error

    assert not kind.finish(reaped, attempt, JobStatus.SUCCEEDED)  # the late worker's success is refused
    assert kind.progress(reaped, attempt, 3, 4) == LOST  # and it is told to stop
    after = _row(kind, row.pk)
    assert (after.status, after.error, after.finished_at) == (reaped.status, reaped.error, reaped.finished_at)
    if kind.model is TrainingRun:  # nothing registered for a run that is not its worker's any more
        assert not after.checkpoints.exists() and not after.model_versions.exists()


def test_a_finish_from_an_earlier_attempt_is_refused_after_a_rerun(kind, world, sent, settings):
    setattr(settings, kind.grace_setting, 60)
    row = kind.make(world)
    first = kind.claim(row.pk)
    _age_heartbeat(kind, row.pk, 120)
    kind.reap()
    kind.rerun(_row(kind, row.pk))
    second = kind.claim(row.pk)
    assert (first, second) == (1, 2)
    assert not kind.finish(_row(kind, row.pk), first, JobStatus.FAILED)
    assert kind.finish(_row(kind, row.pk), second, JobStatus.SUCCEEDED)
    assert _row(kind, row.pk).status == JobStatus.SUCCEEDED


def test_the_reaper_honours_each_kinds_grace(kind, world, sent, settings):
    other = "JOB_STALE_AFTER_SECONDS" if kind.grace_setting == "RUN_STALE_AFTER_SECONDS" else "RUN_STALE_AFTER_SECONDS"
    setattr(settings, kind.grace_setting, 600)
    setattr(settings, other, 5)  # another kind's short grace must not reap this one
    row = kind.make(world)
    kind.claim(row.pk)
    _age_heartbeat(kind, row.pk, 60)
    assert kind.reap() == 0 and _row(kind, row.pk).status == JobStatus.RUNNING
    setattr(settings, kind.grace_setting, 30)
    assert kind.reap() == 1
    row = _row(kind, row.pk)
    assert row.status == JobStatus.FAILED and "over 30s" in row.error


def test_rerun_requeues_a_failed_or_cancelled_job_only(kind, world, sent, settings):
    setattr(settings, kind.grace_setting, 60)
    row = kind.make(world)
    with pytest.raises(ValidationError):
        kind.rerun(row)  # queued: nothing to rerun
    attempt = kind.claim(row.pk)
    kind.finish(_row(kind, row.pk), attempt, JobStatus.FAILED)
    sent.clear()
    kind.rerun(_row(kind, row.pk))
    row = _row(kind, row.pk)
    assert row.status == JobStatus.QUEUED and row.error == "" and row.finished_at is None and not row.cancel_requested
    assert sent == [(kind.task, (row.pk,))]  # enqueued after commit
    assert kind.claim(row.pk) == 2
    kind.finish(_row(kind, row.pk), 2, JobStatus.SUCCEEDED)  # (one loop round at a time per project)

    cancelled = kind.make(world)
    kind.cancel(cancelled)
    kind.rerun(_row(kind, cancelled.pk))
    assert _row(kind, cancelled.pk).status == JobStatus.QUEUED and kind.claim(cancelled.pk) == 1


# --- the SIGKILL drill: real worker processes ---------------------------------------------------

DRILL_QUEUE = "lifecycle-drill"


def _drill_world(project, researcher, tiny_demo_dir, tmp_path):
    """Real jobs of every kind on the tiny demo models, big enough to be caught running."""
    from ml.demo.tasks import generate_tasks
    from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
    from tests.webapp.training.conftest import DPO_CONFIG, make_snapshot
    from webapp.annotation.models import Comparison
    from webapp.annotation.services import comparisons_build
    from webapp.generation.models import Generation

    teacher, student = register_demo_models(project, tiny_demo_dir)
    prompts = import_demo_prompts(project, tiny_demo_dir)
    fresh = import_demo_prompts(project, tiny_demo_dir, name="fresh", tasks=generate_tasks(40, seed=21))
    gen_job = GenerationJob.objects.create(project=project, prompt_set=prompts, status="succeeded")
    for index, prompt in enumerate(prompts.prompts.filter(split="train")[:24]):
        for sample, mv in enumerate((teacher, student)):
            Generation.objects.create(job=gen_job, prompt=prompt, model_version=mv, sample_index=sample, text=f"{index} {sample}")
    comparisons_build(project=project, generations=Generation.objects.filter(job=gen_job), mode="teacher_student")
    snapshot = make_snapshot(project, student, tiny_demo_dir)
    return {
        "generation": lambda: generation_services.generation_job_create(
            project=project, created_by=researcher, model_versions=[teacher, student], prompt_set=prompts,
            prompt_limit=60, k=2, max_new_tokens=24),
        "judge": lambda: judging.judge_job_create(project=project, created_by=researcher, teacher=teacher,
                                                  method="generative", comparisons=Comparison.objects.filter(project=project)),
        "training": lambda: training_services.run_create(project=project, created_by=researcher, method="dpo",
                                                         config={**DPO_CONFIG, "max_steps": 24}, snapshot=snapshot,
                                                         student=student),
        "evaluation": lambda: evaluation_services.evaluation_create(
            project=project, name="drill", teacher=teacher, model_versions=[student], prompt_set=prompts,
            judges=["teacher", "oracle"], created_by=researcher,
            config={"split": "eval", "teacher_judge": "generative", "max_new_tokens": 24, "n_boot": 50}),
        "loop_round": lambda: loop_services.loop_round_start(project=project, student=student, teacher=teacher,
                                                             prompt_set=fresh, prompt_count=40, created_by=researcher),
    }


def _drill_worker(env, log_path):
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp.celery", "worker", "-Q", DRILL_QUEUE,
                             "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo",
                             "-n", f"drill-{time.monotonic_ns()}@%h", "--loglevel", "INFO"],
                            env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KINDS))
def test_sigkill_drill_reap_then_rerun(name, project, researcher, tiny_demo_dir, tmp_path, service_env, sent, settings):
    from celery import Celery

    kind = KINDS[name]
    env = {**service_env, "DISTILLERY_JOB_STALE_AFTER_SECONDS": "5", "DISTILLERY_RUN_STALE_AFTER_SECONDS": "5",
           "DISTILLERY_DATA_DIR": str(tmp_path / "data")}
    broker = Celery("drill")
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    row = _drill_world(project, researcher, tiny_demo_dir, tmp_path)[name]()
    assert sent == [(kind.task, (row.pk,))]  # the service enqueued it; the drill routes it to its own worker

    worker = _drill_worker(env, tmp_path / "worker-1.log")
    try:
        broker.send_task(kind.task, args=[row.pk], queue=DRILL_QUEUE)
        _wait(lambda: _row(kind, row.pk).status != JobStatus.QUEUED, 180, "the claim")
        running = _row(kind, row.pk)
        assert running.status == JobStatus.RUNNING and running.attempt == 1, (running.status, running.error)
        worker.send_signal(signal.SIGKILL)  # mid-job: no finally block, no finish, no heartbeat any more
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert _row(kind, row.pk).status == JobStatus.RUNNING  # nobody told the database

    setattr(settings, kind.grace_setting, 5)
    assert kind.reap() == 0 or _row(kind, row.pk).status == JobStatus.FAILED  # within grace: alive as far as we know
    time.sleep(6)
    kind.reap()
    reaped = _row(kind, row.pk)
    assert reaped.status == JobStatus.FAILED and "No heartbeat" in reaped.error, reaped.error
    assert kind.model.RERUN_HINT in reaped.error

    kind.rerun(reaped)
    worker = _drill_worker(env, tmp_path / "worker-2.log")
    try:
        broker.send_task(kind.task, args=[row.pk], queue=DRILL_QUEUE)
        _wait(lambda: _row(kind, row.pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED), 400, "the rerun")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    done = _row(kind, row.pk)
    assert done.status == JobStatus.SUCCEEDED and done.attempt == 2, (done.error, getattr(done, "traceback", ""))


def test_live_messages_carry_the_eta(world, sent):
    """The evaluation, loop-round and judge-job messages carry the lifecycle's ETA (seconds left)."""
    from webapp.evaluation.events import evaluation_state, round_state

    for name, message in (("evaluation", evaluation_state), ("loop_round", round_state),
                          ("judge", judging.progress_message)):
        kind = KINDS[name]
        row = kind.make(world)
        assert message(row)["eta"] is None  # queued: no estimate yet
        attempt = kind.claim(row.pk)
        kind.model.objects.filter(pk=row.pk).update(started_at=timezone.now() - timedelta(seconds=20), progress_total=4)
        kind.progress(_row(kind, row.pk), attempt, 1, 4)
        assert 50 <= message(_row(kind, row.pk))["eta"] <= 70  # 1 unit in 20 s, 3 to go
