"""Benchmark: N concurrent WebSocket viewers of one training run. Starts the embedded PostgreSQL and
Redis in a temporary directory, migrates, creates a researcher, a project and a run, serves the app
with daphne, opens N authenticated sockets on the run's page socket (each receives its snapshot),
then publishes metric-point events to the run's group the way the worker does (channel layer
group_send) and measures, per viewer and event, the time from publish to receipt.

    .venv/bin/python benchmarks/bench_ws_viewers.py --viewers 100 --events 60 --interval 0.1 [--layer core]

Target (issue 5): p95 publish → receipt <= 100 ms with 100 viewers on this machine."""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def start_services(base: Path) -> dict:
    from webapp.embedded import start_postgres, start_redis

    base.chmod(0o777)  # pgserver runs postgres as its own user
    db_url, pg = start_postgres(base / "pg", database="postgres")
    redis_url, redis = start_redis(base / "redis", persist=False)
    return {"db_url": db_url, "redis_url": redis_url, "pg": pg, "redis": redis}


def setup_world() -> tuple[int, str, str]:
    """Migrates and creates the researcher, project and run. Returns (run id, slug, session cookie)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from webapp.catalog.services import model_version_register
    from webapp.projects.models import Role
    from webapp.projects.services import member_set_role, project_create
    from webapp.training.models import TrainingRun
    from webapp.lifecycle import JobStatus

    user = get_user_model().objects.create_user(username=f"bench-{time.time_ns()}", password="bench-password-1")
    project = project_create(name=f"Bench {time.time_ns()}", created_by=user)
    member_set_role(project=project, user=user, role=Role.RESEARCHER)
    student = model_version_register(project=project, name="student", role="student", source="bench/student")
    run = TrainingRun.objects.create(project=project, name="bench-run", method="dpo", student=student,
                                     status=JobStatus.RUNNING, total_steps=10_000)
    client = Client()
    client.force_login(user)
    return run.id, project.slug, client.cookies["sessionid"].value


def start_daphne(env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"],
                            cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except Exception as exc:
            if getattr(exc, "code", None):
                return proc
            time.sleep(0.2)
    raise RuntimeError("daphne did not start; see " + str(log))


def point(step: int) -> dict:
    """A realistic DPO metric point (the size of what the worker sends per step)."""
    names = ["loss", "lr", "tokens_per_s", "memory_mb", "grad_norm", "rewards/chosen", "rewards/rejected",
             "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "entropy"]
    return {"step": step, "epoch": step / 100, "tokens": step * 512, "t": time.time(),
            "values": {name: 0.5 + step * 1e-3 + i for i, name in enumerate(names)}}


async def connect(url: str, cookie: str, origin: str, attempts: int = 5):
    """Opens one viewer's socket, retrying a refused handshake as run.js's reconnect does."""
    import websockets

    for attempt in range(attempts):
        try:
            return await websockets.connect(url, additional_headers={"Cookie": f"sessionid={cookie}"}, origin=origin,
                                            open_timeout=60, max_queue=None)
        except (websockets.InvalidMessage, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))


async def viewer(url: str, cookie: str, origin: str, latencies: list, expected: int, ready_count: list):
    async with await connect(url, cookie, origin) as socket:
        first = json.loads(await socket.recv())
        assert first["event"] == "run.snapshot", first
        ready_count.append(1)
        received = 0
        while received < expected:
            message = json.loads(await socket.recv())
            now = time.time()
            if message.get("event") == "run.points":
                latencies.append((now - message["sent_at"]) * 1000)
                received += 1


async def run_benchmark(args, run_id: int, slug: str, cookie: str, port: int) -> list[float]:
    from channels.layers import get_channel_layer

    from webapp.training import events

    url = f"ws://127.0.0.1:{port}/ws/p/{slug}/training/runs/{run_id}/"
    latencies, ready_count = [], []
    tasks = []
    for i in range(args.viewers):
        tasks.append(asyncio.create_task(viewer(url, cookie, f"http://127.0.0.1:{port}", latencies,
                                                args.events, ready_count)))
        if i % 20 == 19:
            await asyncio.sleep(0.05)  # a crowd arriving, not a single SYN flood
    while len(ready_count) < args.viewers:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    layer = get_channel_layer()
    group = events.run_group(run_id)
    for step in range(1, args.events + 1):
        payload = {"event": "run.points", "run_id": run_id, "points": [point(step)], "sent_at": time.time()}
        await layer.group_send(group, {"type": "relay", "payload": payload})
        await asyncio.sleep(args.interval)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between published events")
    parser.add_argument("--layer", choices=("pubsub", "core"), default="pubsub",
                        help="channel layer: 'pubsub' = webapp/settings.py's RedisPubSubChannelLayer (what ships); "
                             "'core' = channels_redis.core.RedisChannelLayer, for comparison")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    services = start_services(base)
    env = {**os.environ, "DATABASE_URL": services["db_url"], "REDIS_URL": services["redis_url"],
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "DISTILLERY_VAR_DIR": str(base / "var")}
    if args.layer == "core":
        # Same settings, other layer: a one-line module in the temp dir, so nothing in the repo changes.
        (base / "bench_core_settings.py").write_text(
            "from webapp.settings import *  # noqa\n"
            "CHANNEL_LAYERS = {'default': {'BACKEND': 'channels_redis.core.RedisChannelLayer',"
            " 'CONFIG': {'hosts': [{'address': REDIS_URL, 'socket_timeout': None}]}}}\n")
        env.update(DJANGO_SETTINGS_MODULE="bench_core_settings",
                   PYTHONPATH=os.pathsep.join([str(base), str(REPO), env.get("PYTHONPATH", "")]))
        sys.path.insert(0, str(base))
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DISTILLERY_VAR_DIR")})
    from webapp.embedded import free_port

    run_id, slug, cookie = setup_world()
    port = free_port()
    daphne = start_daphne(env, port, base / "daphne.log")
    try:
        started = time.perf_counter()
        latencies = asyncio.run(run_benchmark(args, run_id, slug, cookie, port))
        elapsed = time.perf_counter() - started
    finally:
        daphne.terminate()
        daphne.wait(timeout=20)
        services["redis"].terminate()
        services["pg"].cleanup()
    expected = args.viewers * args.events
    result = {"viewers": args.viewers, "events": args.events, "interval_s": args.interval,
              "deliveries": len(latencies), "expected": expected, "lost": expected - len(latencies),
              "p50_ms": round(statistics.median(latencies), 2), "p95_ms": round(percentile(latencies, 95), 2),
              "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies), 2),
              "wall_s": round(elapsed, 1), "cpus": os.cpu_count(), "layer": args.layer,
              "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))
    ok = result["p95_ms"] <= 100 and result["lost"] == 0
    print("PASS: p95 <= 100 ms, nothing lost" if ok else "FAIL: target is p95 <= 100 ms with nothing lost")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
