"""Failure drills on real processes: a gpu worker SIGKILLed mid-run is noticed by the reaper (beat +
default worker, stale after 10 s) and a resume continues from the last checkpoint; the web server
restarted mid-run loses no metric point for a connected client, which reconnects with its last
seen step. These tests run their own Celery worker, beat and daphne processes on a private Redis
database, so killing them touches nothing else in the session."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import websockets
from celery import Celery

from tests.conftest import REPO, _wait_http, start_celery_worker
from webapp.embedded import free_port
from webapp.training import services
from webapp.training.models import Checkpoint, MetricPoint, TrainingRun
from webapp.lifecycle import JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CONFIG = {"batch_size": 4, "grad_accum": 2, "max_length": 64, "learning_rate": 1e-3, "warmup_ratio": 0.0,
          "lr_scheduler": "constant"}


@pytest.fixture
def private_env(service_env, embedded_services, monkeypatch, tmp_path):
    """Env for this test's processes (their own Redis db: broker and channel layer), and the test
    process's enqueue pointed at the same broker."""
    redis_url = embedded_services["redis_url"].rsplit("/", 1)[0] + "/7"
    env = {**service_env, "REDIS_URL": redis_url, "DISTILLERY_RUN_STALE_AFTER_SECONDS": "10"}
    private = Celery("distillery-private")
    private.config_from_object("django.conf:settings", namespace="CELERY")
    private.conf.broker_url = redis_url
    monkeypatch.setattr("webapp.celery.app", private)
    procs = []
    yield env, procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _launch(project, researcher, snapshot, demo_models, **config):
    return services.run_create(project=project, created_by=researcher, method="dpo", config={**CONFIG, **config},
                               snapshot=snapshot, student=demo_models["student"])


def test_sigkilled_worker_is_reaped_and_resume_continues_from_checkpoint(
        private_env, project, researcher, snapshot, demo_models, tmp_path):
    env, procs = private_env
    gpu = start_celery_worker(env, "gpu", tmp_path / "gpu.log", "gpu-doomed")
    reaper = subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp.celery", "worker", "-B", "-Q", "default",
                               "--pool", "solo", "-n", "reaper@%h", "-s", str(tmp_path / "beat-schedule")],
                              cwd=REPO, env=env, stdout=open(tmp_path / "reaper.log", "ab"), stderr=subprocess.STDOUT)
    procs += [gpu, reaper]
    run = _launch(project, researcher, snapshot, demo_models, max_steps=300, save_every_steps=20)

    _wait(lambda: Checkpoint.objects.filter(run=run, step__gte=20).exists()
          and TrainingRun.objects.get(id=run.id).step > 25, 120, "a checkpoint and steps past it")
    os.kill(gpu.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    last_checkpoint = Checkpoint.objects.filter(run=run).order_by("-step").first()
    assert TrainingRun.objects.get(id=run.id).status == JobStatus.RUNNING

    _wait(lambda: TrainingRun.objects.get(id=run.id).status == JobStatus.FAILED, 120, "the reaper")
    assert time.monotonic() - killed_at < 120
    run.refresh_from_db()
    assert "heartbeat" in run.error

    last_checkpoint = Checkpoint.objects.filter(run=run).order_by("-step").first()  # any written before the kill
    services.run_resume(run=run)
    procs.append(start_celery_worker(env, "gpu", tmp_path / "gpu2.log", "gpu-fresh"))
    _wait(lambda: TrainingRun.objects.get(id=run.id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED), 240, "resume")
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.traceback
    assert run.resume_from == last_checkpoint and run.attempt == 2 and run.step == 300
    assert list(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == list(range(1, 301))
    assert f"resuming at step {last_checkpoint.step}" in run.log_tail


def _start_daphne(env, port, log_path):
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"],
                            cwd=REPO, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


async def _follow(url, cookie, origin, restart, restart_after_step):
    """Mimics static/training/run.js: keeps points by step, reconnects with ?after=<last step>."""
    seen, last, restarted, reconnects, status = {}, -1, False, 0, None
    while True:
        try:
            async with websockets.connect(f"{url}?after={last}", additional_headers={"Cookie": f"sessionid={cookie}"},
                                          origin=origin, open_timeout=10) as socket:
                async for raw in socket:
                    message = json.loads(raw)
                    for point in message.get("points", []):
                        if point["step"] > last:
                            seen[point["step"]] = point
                            last = point["step"]
                    if "run" in message:
                        status, total = message["run"]["status"], message["run"]["total_steps"]
                        if status == JobStatus.SUCCEEDED and last == total:
                            return seen, reconnects, total
                    if not restarted and last >= restart_after_step:
                        restarted = True
                        await asyncio.to_thread(restart)
        except (websockets.ConnectionClosed, OSError, asyncio.TimeoutError):
            pass
        reconnects += 1
        await asyncio.sleep(0.3)


def test_web_server_restart_loses_no_metric_point(private_env, project, researcher, snapshot, demo_models, client,
                                                   tmp_path):
    env, procs = private_env
    port = free_port()
    servers = [_start_daphne(env, port, tmp_path / "daphne.log")]
    procs.append(start_celery_worker(env, "gpu", tmp_path / "gpu.log", "gpu-live"))
    client.force_login(researcher)
    run = _launch(project, researcher, snapshot, demo_models, max_steps=400)

    def restart():
        servers[-1].terminate()
        servers[-1].wait(timeout=20)
        time.sleep(1.0)  # the worker keeps publishing to nobody meanwhile
        servers.append(_start_daphne(env, port, tmp_path / "daphne.log"))

    url = f"ws://127.0.0.1:{port}/ws/p/{project.slug}/training/runs/{run.id}/"
    try:
        seen, reconnects, total = asyncio.run(asyncio.wait_for(
            _follow(url, client.cookies["sessionid"].value, f"http://127.0.0.1:{port}", restart, 20), 300))
    finally:
        procs.extend(servers)
    assert reconnects >= 1 and len(servers) == 2
    assert total == 400 and sorted(seen) == list(range(1, 401))  # every point, none missing or doubled
    stored = {p.step: p.values["loss"] for p in MetricPoint.objects.filter(run=run)}
    assert {s: p["values"]["loss"] for s, p in seen.items()} == stored
