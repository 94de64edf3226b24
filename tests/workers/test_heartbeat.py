"""Worker liveness as /healthz sees it: a real Celery worker and a real celery beat process write
fresh heartbeat keys for what they serve, and a worker killed outright (no shutdown hook runs)
drops out of `live_workers` within three heartbeat intervals, which is what turns the header badge
red. The worker consumes a queue of its own so it never takes another test's tasks."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from webapp.health import heartbeats

REPO = Path(__file__).resolve().parents[2]
QUEUE = "heartbeat-probe"
INTERVAL = 1  # seconds; the keys live 3 intervals


@pytest.fixture
def probe_env(service_env):
    return {**service_env, "DISTILLERY_WORKER_HEARTBEAT_SECONDS": str(INTERVAL)}


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp.celery", *args], cwd=REPO, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        assert proc.poll() is None, f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s:\n{log.read_text()[-3000:]}")


def _stamp(queue: str, hostname: str) -> float | None:
    raw = heartbeats._client().get(f"distillery:heartbeat:{queue}:{hostname}")
    return float(raw) if raw else None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_worker_beats_while_alive_and_drops_out_when_killed(probe_env, tmp_path):
    hostname = f"probe@{socket.gethostname()}"
    started = time.time()
    log = tmp_path / "worker.log"
    worker = _start(["worker", "-Q", QUEUE, "--pool", "solo", "-n", "probe@%h", "--loglevel", "INFO"], probe_env, log)
    try:
        _wait_for(lambda: hostname in heartbeats.live_workers().get(QUEUE, []), worker, log)
        first = _stamp(QUEUE, hostname)
        assert first >= started
        time.sleep(INTERVAL * 2.5)
        assert _stamp(QUEUE, hostname) > first, "the heartbeat must be refreshed, not written once"
        ttl = heartbeats._client().ttl(f"distillery:heartbeat:{QUEUE}:{hostname}")
        assert 0 < ttl <= 3 * INTERVAL
        os.killpg(worker.pid, signal.SIGKILL)  # no worker_shutdown hook runs: only expiry can tell
        worker.wait(timeout=30)
        killed = time.monotonic()
        while hostname in heartbeats.live_workers().get(QUEUE, []):
            assert time.monotonic() - killed < 3 * INTERVAL + 2, "a dead worker still counts as alive"
            time.sleep(0.2)
    finally:
        _stop(worker)


def test_beat_process_beats_under_the_beat_queue(probe_env, tmp_path):
    client = heartbeats._client()
    for key in client.scan_iter(match="distillery:heartbeat:beat:*"):
        client.delete(key)  # a key left by an earlier test must not pass for this process
    started = time.time()
    log = tmp_path / "beat.log"
    beat = _start(["beat", "--schedule", str(tmp_path / "schedule"), "--loglevel", "INFO"], probe_env, log)
    try:
        hosts = _wait_for(lambda: heartbeats.live_workers()["beat"], beat, log)
        assert hosts == [f"beat@{socket.gethostname()}"]
        assert _stamp("beat", hosts[0]) >= started
    finally:
        _stop(beat)
    client.delete(f"distillery:heartbeat:beat:{hosts[0]}")
