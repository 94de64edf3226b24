"""B17: two DCKD runs with the same π_dpo inputs, started at once on two real gpu worker processes,
give one π_dpo build and one reuse (ml.pipeline's stage cache holds a file lock for the build and
publishes it with one rename), instead of both training into one folder."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

from tests.webapp.test_lifecycle import SentTasks
from tests.webapp.training.conftest import DPO_CONFIG, make_snapshot
from webapp.catalog.services import model_version_register
from webapp.lifecycle import JobStatus
from webapp.projects.services import project_create
from webapp.training import services
from webapp.training.models import TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TRAIN_TASK = "workers.tasks.gpu.training.train_run"


def _worker(env, queue: str, log: Path):
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp.celery", "worker", "-Q", queue,
                             "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo", "-n", f"{queue}@%h",
                             "--loglevel", "INFO"], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_building_the_same_pi_dpo_give_one_build_and_one_reuse(
        django_user_model, tiny_demo_dir, service_env, tmp_path, monkeypatch):
    monkeypatch.setattr("webapp.celery.app", SentTasks())  # the runs go to this test's own two workers below
    user = django_user_model.objects.create_user(username="rhea-researcher", password="pw-123456789")
    project = project_create(name="Stage cache", created_by=user)
    student = model_version_register(project=project, name="tiny-student", role="student", source=str(tiny_demo_dir / "student"))
    teacher = model_version_register(project=project, name="tiny-teacher", role="teacher", stage="sft",
                                     source=str(tiny_demo_dir / "teacher"))
    snapshot = make_snapshot(project, student, tiny_demo_dir)
    config = {k: v for k, v in DPO_CONFIG.items() if k != "save_every_steps"} | {"max_steps": 6, "top_k": 8}
    runs = [services.run_create(project=project, created_by=user, method="dckd", config=config, snapshot=snapshot,
                                student=student, teacher_sft=teacher) for _ in range(2)]

    data_dir = tmp_path / "data"
    env = {**service_env, "DISTILLERY_DATA_DIR": str(data_dir)}
    logs = [tmp_path / "gpu-a.log", tmp_path / "gpu-b.log"]
    workers = [_worker(env, "stage-a", logs[0]), _worker(env, "stage-b", logs[1])]
    broker = Celery("stage-cache-test")
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    try:
        _wait(lambda: all(" ready." in log.read_text() for log in logs), 120, "both workers")
        for run, queue in zip(runs, ("stage-a", "stage-b")):
            broker.send_task(TRAIN_TASK, args=[run.id], queue=queue)
        finished = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
        _wait(lambda: all(TrainingRun.objects.get(id=r.id).status in finished for r in runs), 600, "both runs")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)

    runs = [TrainingRun.objects.select_related("teacher_dpo").get(id=r.id) for r in runs]
    assert [r.status for r in runs] == [JobStatus.SUCCEEDED] * 2, [r.traceback for r in runs]
    assert runs[0].worker != runs[1].worker  # two worker processes
    assert runs[0].teacher_dpo_id == runs[1].teacher_dpo_id  # one π_dpo model version
    tails = [r.log_tail for r in runs]
    assert sorted("trained (" in t for t in tails) == [False, True]  # one build ...
    reuser = tails[0] if "trained (" in tails[1] else tails[1]
    assert "found in the stage cache" in reuser and "waiting for another worker" in reuser  # ... one wait, one reuse
    stage = Path(runs[0].teacher_dpo.source)
    assert stage.name == "final" and (stage / "model.safetensors").exists()
    assert [p.name for p in stage.parent.iterdir()] == ["final"]  # no second build, no half-built leftovers
