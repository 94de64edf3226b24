"""`make run` as a user runs it: `python -m webapp.launcher` on a fresh var/ directory brings up
PostgreSQL, Redis, granian, both Celery workers and beat; /healthz turns green with live heartbeats;
the demo admin logs in over real HTTP (with CSRF) and sees the demo project; Ctrl-C (SIGINT to the
launcher's process group, as a terminal sends it) leaves no process behind; a second start reuses
the data in var/. A launcher refuses to start on a taken port or on a var/ another one is using."""
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from webapp.embedded import free_port

REPO = Path(__file__).resolve().parents[2]


class Launch:
    """One `python -m webapp.launcher` process in its own session, with its output in a log file."""

    def __init__(self, var: Path, demo: Path, port: int, log: Path):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}  # embedded default
        env.update({"DISTILLERY_VAR_DIR": str(var), "DISTILLERY_DEMO_DIR": str(demo), "DISTILLERY_PORT": str(port),
                    "DISTILLERY_READY_TIMEOUT": "240", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        self.var, self.port, self.log = var, port, log
        self.proc = subprocess.Popen([sys.executable, "-m", "webapp.launcher"], cwd=REPO, env=env,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_healthy(self, timeout: float = 300) -> dict:
        deadline, report = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"launcher exited with {self.proc.returncode}:\n{self.tail()}"
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=5) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                report = json.load(exc)
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"/healthz not green within {timeout}s; last report {report}\n{self.tail()}")

    def processes(self) -> list[psutil.Process]:
        """Every process this launch started: its descendants plus the postmaster, which pg_ctl
        detaches (its pid is the first line of postmaster.pid)."""
        postmaster = psutil.Process(int((self.var / "pg" / "postmaster.pid").read_text().split()[0]))
        return psutil.Process(self.proc.pid).children(recursive=True) + [postmaster] + postmaster.children(recursive=True)

    def interrupt(self, timeout: float = 120) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill_leftovers(self) -> None:
        """Only after a failed assertion: do not leave servers behind for the next test."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        pidfile = self.var / "pg" / "postmaster.pid"
        if pidfile.exists() and psutil.pid_exists(pid := int(pidfile.read_text().split()[0])):
            os.kill(pid, signal.SIGINT)  # postgres' "fast shutdown"


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # a transient process (autovacuum worker, pool child) already gone
        return ""


def _alive(procs: list[psutil.Process]) -> list[str]:
    _, alive = psutil.wait_procs(procs, timeout=15)
    out = []
    for proc in alive:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:  # exited; only waits for its (non-reaping) parent
                out.append(f"{proc.pid} {_cmdline(proc)[:120]}")
        except psutil.NoSuchProcess:
            pass
    return out


def _login(launch: Launch, username: str, password: str) -> str:
    """Logs in through the real login form (CSRF cookie + token) and returns the page landed on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(launch.url("/login/"), timeout=20).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password}).encode()
    with opener.open(urllib.request.Request(launch.url("/login/"), data=body), timeout=20) as response:
        landed = response.read().decode()
        assert "/login/" not in response.geturl(), "login failed: still on the login page"
    project = opener.open(launch.url("/p/demo/"), timeout=20)
    assert project.status == 200
    return landed


def _no_debug_pages(launch: Launch) -> None:
    """Issue 22: `make run` serves with DEBUG off: a real 404 page (no URL list), a CSP header, and
    static files still served."""
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(launch.url("/no-such-page/"), timeout=20)
    page = missing.value.read().decode()
    assert missing.value.code == 404 and "Page not found" in page and "URLconf" not in page and "settings" not in page
    with urllib.request.urlopen(launch.url("/login/"), timeout=20) as response:
        assert "script-src 'self' 'nonce-" in response.headers["Content-Security-Policy"]
    with urllib.request.urlopen(launch.url("/static/css/app.css"), timeout=20) as response:
        assert response.status == 200


def _state(var: Path) -> dict:
    """What a restart must keep, read straight from the embedded database the launcher announced."""
    url = json.loads((var / "embedded.json").read_text())["database_url"]
    with psycopg.connect(url) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {"admin_id": one("SELECT id FROM auth_user WHERE username = 'admin'"),
                "demo_ids": [r[0] for r in conn.execute("SELECT id FROM projects_project WHERE name = 'Demo'")],
                "prompts": one("SELECT count(*) FROM catalog_prompt")}


def _second_launcher_is_refused(launch: Launch, demo: Path) -> None:
    """A second `make run` on the same var/ would share, then stop, the first one's servers."""
    second = Launch(launch.var, demo, free_port(), launch.log.with_name("second.log"))
    assert second.proc.wait(timeout=60) != 0
    assert "Another `make run`" in second.tail() and str(launch.proc.pid) in second.tail()
    assert launch.wait_healthy(timeout=30)["ok"], "the first launcher must be untouched"


def _start_check_stop(var: Path, demo: Path, log: Path, *, probe_second: bool = False) -> dict:
    launch = Launch(var, demo, free_port(), log)
    try:
        report = launch.wait_healthy()
        if probe_second:
            _second_launcher_is_refused(launch, demo)
        assert report["ok"] and report["database"]["ok"] and report["channel_layer"]["ok"]
        for queue in ("gpu", "default", "beat"):
            assert report["workers"][queue]["count"], f"no live {queue} heartbeat: {report}"
        landed = _login(launch, "admin", "distillery")
        assert 'href="/p/demo/"' in landed and "Demo" in landed
        _no_debug_pages(launch)
        state = _state(var)
        procs = launch.processes()
        commands = " ".join(_cmdline(p) for p in procs)
        for part in ("granian", "-Q gpu", "-Q default", "beat", "redis-server", "postgres"):
            assert part in commands, f"{part} is not among the launcher's processes"
        assert launch.interrupt() == 0, launch.tail()
        assert _alive(procs) == [], "processes left running after Ctrl-C"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", launch.port), timeout=2).close()
        assert not (var / "embedded.json").exists()
        return state
    finally:
        launch.kill_leftovers()


@pytest.mark.slow
def test_make_run_starts_everything_stops_cleanly_and_keeps_data(tmp_path, tiny_demo_dir):
    var = tmp_path / "var"
    first = _start_check_stop(var, tiny_demo_dir, tmp_path / "launcher-1.log", probe_second=True)
    assert len(first["demo_ids"]) == 1 and first["prompts"] > 0
    second = _start_check_stop(var, tiny_demo_dir, tmp_path / "launcher-2.log")
    assert second == first, "a second start must reuse var/: same admin, one demo project, no new prompts"


def test_refuses_a_port_in_use_with_a_clear_message(tmp_path, tiny_demo_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        launch = Launch(tmp_path / "var", tiny_demo_dir, busy.getsockname()[1], tmp_path / "launcher.log")
        assert launch.proc.wait(timeout=60) != 0
    assert "already in use" in launch.tail()
    assert not (tmp_path / "var" / "pg").exists(), "nothing should start when the port is taken"
