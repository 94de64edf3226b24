"""workers/launch.py with ml/distributed.py: one run on 2 real CPU processes (torchrun, gloo). Rank 0
alone reports each step; a cancel reaches both ranks, which stop at the same step with a resumable
checkpoint, and the resumed 2-process run ends where a straight one does; a rank killed with SIGKILL
fails the run with LaunchError and leaves no process of the group behind; and the gpu task, given a
run whose config asks for 2 processes, launches the group, stores rank 0's points once per step,
registers its checkpoints and the new model version."""
import os
import signal
import threading

import pytest
import torch
from safetensors.torch import load_file

from ml.config import config_to_dict
from ml.data import PreferencePair
from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import generate_tasks
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer
from ml.recipes.hooks import Hooks
from tests.ml.recipes.conftest import tiny_config
from workers.launch import LAUNCH_DIR, LaunchError, train_distributed, wait_for_pids

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    tokenizer = train_demo_tokenizer(corpus_from_tasks(generate_tasks(200, seed=0)))
    return save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=2), tokenizer,
                          tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def pairs():
    return [PreferencePair(t.prompt, t.answer, t.answer[::-1] + " 7") for t in generate_tasks(16, seed=3)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_processes_train_cancel_and_resume_exactly(student_dir, pairs, tmp_path):
    # Enough steps that the cancel (relayed asynchronously from the supervisor) lands mid-run.
    steps = 80
    config = config_to_dict(tiny_config("sft", max_steps=steps, num_processes=2))
    events = []
    straight = train_distributed("sft", config, pairs, tmp_path / "a", Hooks(on_progress=events.append),
                                 num_processes=2, student=student_dir)
    assert [e.step for e in events] == list(range(1, steps + 1))  # rank 0 only: one event per optimizer step
    assert straight.steps == steps and not straight.stopped and (straight.final_dir / "model.safetensors").exists()
    assert events[0].epoch == 0.25  # 16 rows, batch 2 per rank, 2 ranks: 4 steps per epoch

    done = []
    stopper = Hooks(on_progress=lambda e: done.append(e.step), should_stop=lambda: len(done) >= 2)
    stopped = train_distributed("sft", config, pairs, tmp_path / "b", stopper, num_processes=2, student=student_dir)
    assert stopped.stopped and 2 <= stopped.steps < steps and stopped.final_dir.name == f"checkpoint-{stopped.steps}"
    assert (stopped.final_dir / "training_state.json").exists()
    resumed = train_distributed("sft", config, pairs, tmp_path / "b", num_processes=2, student=student_dir,
                                resume_from=stopped.final_dir)
    assert resumed.steps == steps and [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a, b = load_file(str(straight.final_dir / "model.safetensors")), load_file(str(resumed.final_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_rank_fails_the_run_and_leaves_no_process(student_dir, pairs, tmp_path):
    config = config_to_dict(tiny_config("sft", max_steps=100000, num_processes=2))
    out = tmp_path / "run"
    first_step = threading.Event()
    pids = []

    def kill_rank_one():
        pids.extend(wait_for_pids(out / LAUNCH_DIR, 2))
        first_step.wait(120)
        os.kill(pids[1], signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_one, daemon=True)
    killer.start()
    with pytest.raises(LaunchError, match="exited with status"):
        train_distributed("sft", config, pairs, out, Hooks(on_progress=lambda e: first_step.set()),
                          num_processes=2, student=student_dir)
    killer.join(5)
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def test_ranks_die_with_a_supervisor_killed_by_sigkill(student_dir, pairs, tmp_path):
    # A gpu worker killed outright must not leave ranks training on. Two things see to it: rank 0's next
    # event hits the closed pipe and ends it (the launcher then stops the rest), and the launcher carries
    # PR_SET_PDEATHSIG, which also covers phases with no output (a long precompute). This test exercises
    # the first (it passes without the second).
    import json
    import subprocess
    import sys
    import time

    from ml.data import write_jsonl

    out = tmp_path / "run"
    config = config_to_dict(tiny_config("sft", max_steps=100000, num_processes=2))
    script = ("import json, sys; from ml.data import load_preference_pairs; from workers.launch import train_distributed; "
              "train_distributed('sft', json.loads(sys.argv[1]), load_preference_pairs(sys.argv[2]), sys.argv[3], "
              "num_processes=2, student=sys.argv[4])")
    supervisor = subprocess.Popen([sys.executable, "-c", script, json.dumps(config),
                                   str(write_jsonl(tmp_path / "pairs.jsonl", pairs)), str(out), str(student_dir)])
    try:
        pids = wait_for_pids(out / LAUNCH_DIR, 2)
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in pids)
    finally:
        supervisor.kill()


@pytest.fixture
def two_process_run(django_user_model, tiny_demo_dir, settings, tmp_path, embedded_services, monkeypatch):
    from celery import Celery

    from tests.webapp.training.conftest import make_snapshot
    from webapp.catalog.services import model_version_register
    from webapp.projects.services import project_create
    from webapp.training import services

    private = Celery("distillery-unconsumed")  # enqueued where no worker reads: this test runs the task itself
    private.config_from_object("django.conf:settings", namespace="CELERY")
    private.conf.broker_url = embedded_services["redis_url"].rsplit("/", 1)[0] + "/8"
    monkeypatch.setattr("webapp.celery.app", private)
    settings.DATA_DIR = tmp_path / "data"
    user = django_user_model.objects.create_user(username="rhea-researcher", password="pw-123456789")
    project = project_create(name="Launch Tests", created_by=user)
    student = model_version_register(project=project, name="tiny-student", role="student",
                                     source=str(tiny_demo_dir / "student"))
    config = {"batch_size": 2, "grad_accum": 1, "max_length": 64, "learning_rate": 1e-3, "warmup_ratio": 0.0,
              "lr_scheduler": "constant", "max_steps": 6, "save_every_steps": 3, "num_processes": 2}
    return services.run_create(project=project, created_by=user, method="sft", config=config,
                               snapshot=make_snapshot(project, student, tiny_demo_dir), student=student)


@pytest.mark.django_db(transaction=True)
def test_gpu_task_runs_a_two_process_run(two_process_run):
    from webapp.catalog.models import ModelVersion
    from webapp.lifecycle import JobStatus
    from webapp.training.models import Checkpoint, MetricPoint, TrainingRun
    from workers.tasks.gpu.training import train_run

    assert train_run(two_process_run.id) == "succeeded"
    run = TrainingRun.objects.get(id=two_process_run.id)
    assert run.status == JobStatus.SUCCEEDED and run.step == 6
    assert list(MetricPoint.objects.filter(run=run).order_by("step").values_list("step", flat=True)) == list(range(1, 7))
    assert {(3, False), (6, True)} <= set(Checkpoint.objects.filter(run=run).values_list("step", "is_final"))
    assert ModelVersion.objects.get(produced_by=run).config["num_processes"] == 2
    assert "launching 2 processes" in run.log_tail
