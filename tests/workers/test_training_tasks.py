"""workers/tasks/gpu/training.py, run in this process on the real database and Redis with the tiny
demo models: a DPO run stores every metric point, registers checkpoints (HF dirs with tokenizer and
model card) and a new student model version with its lineage; a cancel stops at a checkpoint and a
resume continues the step count from it; a broken input fails the run with its traceback; DCKD with
no π_dpo trains the teacher's DPO stage first and a second run reuses it from the cache."""
import threading
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from tests.webapp.training.conftest import DPO_CONFIG, make_snapshot
from webapp.catalog.models import ModelVersion
from webapp.catalog.services import model_version_register
from webapp.projects.services import project_create
from webapp.training import services
from webapp.training.models import Checkpoint, MetricPoint, TrainingRun
from webapp.lifecycle import JobStatus
from workers.tasks.gpu.training import train_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unconsumed_queue(embedded_services, monkeypatch):
    """This module runs the task in-process: its runs are enqueued on a Redis db that no worker reads,
    so a session-wide gpu worker (started by other tests) cannot claim them first."""
    private = Celery("distillery-unconsumed")
    private.config_from_object("django.conf:settings", namespace="CELERY")
    private.conf.broker_url = embedded_services["redis_url"].rsplit("/", 1)[0] + "/8"
    monkeypatch.setattr("webapp.celery.app", private)


@pytest.fixture
def setup(django_user_model, tiny_demo_dir, settings, tmp_path, unconsumed_queue):
    settings.DATA_DIR = tmp_path / "data"
    user = django_user_model.objects.create_user(username="rhea-researcher", password="pw-123456789")
    project = project_create(name="Worker Tests", created_by=user)
    student = model_version_register(project=project, name="tiny-student", role="student",
                                     source=str(tiny_demo_dir / "student"))
    teacher = model_version_register(project=project, name="tiny-teacher", role="teacher", stage="sft",
                                     source=str(tiny_demo_dir / "teacher"))
    snapshot = make_snapshot(project, student, tiny_demo_dir)
    return {"user": user, "project": project, "student": student, "teacher": teacher, "snapshot": snapshot}


def _create(setup, method="dpo", config=None, **models):
    models.setdefault("student", setup["student"])
    return services.run_create(project=setup["project"], created_by=setup["user"], method=method,
                               config=config or DPO_CONFIG, snapshot=setup["snapshot"], **models)


def test_dpo_run_stores_points_checkpoints_and_registers_a_model_version(setup):
    run = _create(setup)
    assert train_run(run.id) == "succeeded"
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.step == run.total_steps == 12
    points = list(MetricPoint.objects.filter(run=run).order_by("step"))
    assert [p.step for p in points] == list(range(1, 13))  # writes are batched, but every step is kept
    for name in ("loss", "lr", "tokens_per_s", "memory_mb", "rewards/chosen", "rewards/margins", "logps/rejected"):
        assert name in points[-1].values, name
    assert points[-1].tokens > points[0].tokens > 0
    steps = set(Checkpoint.objects.filter(run=run).values_list("step", "is_final"))
    assert {(3, False), (6, False), (9, False), (12, True)} <= steps
    final = Path(Checkpoint.objects.get(run=run, is_final=True).path)
    card = (final / "README.md").read_text()
    assert "DPO" in card and setup["snapshot"].content_hash in card and "loss" in card
    assert (final / "tokenizer.json").exists() and (final / "model.safetensors").exists()
    version = ModelVersion.objects.get(produced_by=run)
    assert (version.parent, version.snapshot, version.method, version.role) == (
        setup["student"], setup["snapshot"], "dpo", "student")
    assert version.config["beta"] == 0.1 and version.parameter_count > 0 and version.source == str(final)
    assert "step 12/12" in run.log_tail
    assert train_run(run.id) == "not claimed"  # idempotent: a redelivered task does nothing


def _in_thread(run_id):
    outcome = {}

    def target():
        try:
            outcome["result"] = train_run(run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


@pytest.mark.slow
def test_cancel_leaves_checkpoint_and_resume_continues_the_step_count(setup):
    run = _create(setup, config={**DPO_CONFIG, "max_steps": 400, "save_every_steps": 0})
    thread, outcome = _in_thread(run.id)
    deadline = time.monotonic() + 60
    while not MetricPoint.objects.filter(run=run).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    services.run_cancel(run=TrainingRun.objects.get(id=run.id))
    thread.join(timeout=120)
    run.refresh_from_db()
    stopped_at = run.step
    assert outcome["result"] == "cancelled" and run.status == JobStatus.CANCELLED and 0 < stopped_at < 400
    checkpoint = Checkpoint.objects.get(run=run, step=stopped_at)
    assert (Path(checkpoint.path) / "optimizer.pt").exists()  # resumable: optimizer state is there

    services.run_resume(run=run)
    run.refresh_from_db()
    assert run.resume_from == checkpoint and run.status == JobStatus.QUEUED and not run.cancel_requested
    assert train_run(run.id) == "succeeded"
    run.refresh_from_db()
    assert run.step == 400 and run.attempt == 2
    steps = list(MetricPoint.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(1, 401))  # the curve continues from the checkpoint: no restart, no gap


def test_broken_input_fails_with_traceback(setup, tmp_path):
    broken = model_version_register(project=setup["project"], name="gone", role="student", source=str(tmp_path / "nope"))
    run = _create(setup, student=broken)
    assert train_run(run.id) == "failed"
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "Traceback (most recent call last)" in run.traceback
    assert str(tmp_path / "nope") in run.error or "nope" in run.traceback


@pytest.mark.slow
def test_dckd_without_pi_dpo_trains_teacher_dpo_first_and_caches_it(setup):
    config = {k: v for k, v in DPO_CONFIG.items() if k != "save_every_steps"} | {"max_steps": 2, "top_k": 8}
    first = _create(setup, method="dckd", config=config, teacher_sft=setup["teacher"])
    assert train_run(first.id) == "succeeded", TrainingRun.objects.get(id=first.id).traceback
    first.refresh_from_db()
    pi_dpo = first.teacher_dpo
    assert pi_dpo is not None and pi_dpo.stage == "dpo" and pi_dpo.parent == setup["teacher"]
    assert (Path(pi_dpo.source) / "model.safetensors").exists()
    assert "teacher DPO" in first.log_tail

    second = _create(setup, method="dckd", config=config, teacher_sft=setup["teacher"])
    assert train_run(second.id) == "succeeded"
    second.refresh_from_db()
    assert second.teacher_dpo == pi_dpo  # same π_sft files, pairs and config: the stage cache hit
    assert "found in the stage cache" in second.log_tail


@pytest.mark.slow
def test_adpa_plus_reuses_an_earlier_runs_dckd_stage_found_by_key(setup):
    """The DCKD stage of a finished ADPA+ run is published under its input hash (ml.pipeline), and a
    second run with the same inputs links it instead of training DCKD again (no glob over run folders)."""
    stage = {k: v for k, v in DPO_CONFIG.items() if k not in ("save_every_steps", "beta")} | {"max_steps": 2, "top_k": 8}
    config = {"dckd": stage, "adpa": stage | {"max_new_tokens": 8}}
    first = _create(setup, method="adpa_plus", config=config, teacher_sft=setup["teacher"])
    assert train_run(first.id) == "succeeded", TrainingRun.objects.get(id=first.id).traceback
    second = _create(setup, method="adpa_plus", config=config, teacher_sft=setup["teacher"])
    assert train_run(second.id) == "succeeded", TrainingRun.objects.get(id=second.id).traceback
    second.refresh_from_db()
    assert "reusing the DCKD stage" in second.log_tail
    own = services.run_dir(second.id) / "dckd" / "final"
    assert own.is_symlink() and own.resolve() == (services.run_dir(first.id) / "dckd" / "final").resolve()
    assert not any(p.name.startswith("checkpoint-") for p in (services.run_dir(second.id) / "dckd").iterdir())


def test_adpa_with_an_explicit_vllm_that_cannot_run_fails_before_any_training(setup, settings):
    """ADPA's student responses would be written on vLLM: where it cannot run the run fails at once with
    the reason, before π_dpo is trained, and never quietly on HF."""
    from ml import backends

    if backends.vllm_problem() is None:
        pytest.skip("vLLM can run on this host")
    settings.GENERATION_BACKEND = "vllm"
    run = _create(setup, method="adpa", config={k: v for k, v in DPO_CONFIG.items() if k != "beta"} | {"max_steps": 1},
                  teacher_sft=setup["teacher"])
    assert train_run(run.id) == "failed"
    run.refresh_from_db()
    assert run.error.startswith("BackendUnavailable: DISTILLERY_GENERATION_BACKEND=vllm, but ")
    assert run.teacher_dpo is None and not (settings.DATA_DIR / "cache" / "stages").exists()
