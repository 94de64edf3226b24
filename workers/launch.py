"""The supervisor of a run that trains on several processes: it writes the run's spec and data for
ml.distributed, starts `torchrun` (or `accelerate launch` with a config file, for FSDP/DeepSpeed
setups) as a child process group, relays rank 0's per-step events to the run's hooks (progress,
and through them heartbeat and checkpoint registration), turns the cancel flag into the stop file
every rank polls, and fails cleanly when any rank dies: the launcher tears the other ranks down and
exits non-zero, and whatever is left of the group is killed here. No business rules: the task in
workers/tasks/gpu/training.py decides when to call it."""
import logging
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from ml.data import write_jsonl
from ml.distributed import EVENT_PREFIX, result_from_dict, write_spec
from ml.recipes.hooks import Hooks, ProgressEvent, TrainResult

log = logging.getLogger(__name__)
LAUNCH_DIR = "launch"
TAIL_LINES = 40


class LaunchError(RuntimeError):
    """The process group ended without a result (a rank crashed or was killed)."""


def _prctl():
    if sys.platform != "linux":
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl  # resolved here, never in a freshly forked child


_PRCTL = _prctl()


def _die_with_parent() -> None:
    """preexec_fn of the launcher: if the gpu worker dies (even by SIGKILL), the kernel sends the
    launcher SIGTERM and it takes its ranks down, so no orphan keeps training on the GPUs."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(spec: Path, num_processes: int, *, accelerate_config: str | None = None) -> list[str]:
    """torchrun by default (CPU ranks use gloo, GPU ranks NCCL); `accelerate launch --config_file` when a
    config is given (DISTILLERY_ACCELERATE_CONFIG), which is how FSDP or DeepSpeed get switched on."""
    port = str(_free_port())
    if accelerate_config:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
                "--num_processes", str(num_processes), "--main_process_port", port, "-m", "ml.distributed", str(spec)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(num_processes), "--master-port", port, "-m", "ml.distributed", str(spec)]


def _read(stream, events: queue.Queue, tail: deque) -> None:
    for line in stream:
        if line.startswith(EVENT_PREFIX):
            events.put(line[len(EVENT_PREFIX):])
        elif line.strip():
            tail.append(line.rstrip())
            log.info("%s", line.rstrip())
    events.put(None)  # end of output


def _kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        try:  # the launcher is gone; take down any rank it left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def train_distributed(method: str, config: dict, data: list, output_dir, hooks: Hooks | None = None, *,
                      num_processes: int, resume_from=None, env: dict | None = None, poll_seconds: float = 0.2,
                      **models) -> TrainResult:
    """Run `method` on `num_processes` ranks and return rank 0's TrainResult. `config` is the plain
    dict of the method's config; `models` are the recipe's model arguments (paths). Raises LaunchError
    when the group exits without a result."""
    import json

    hooks, output_dir = hooks or Hooks(), Path(output_dir)
    work = output_dir / LAUNCH_DIR
    work.mkdir(parents=True, exist_ok=True)
    cancel_file, result_file = work / "cancel", work / "result.json"
    for stale in (cancel_file, result_file):
        stale.unlink(missing_ok=True)
    spec = write_spec(work / "spec.json", method=method, config=config, data_file=write_jsonl(work / "data.jsonl", data),
                      output_dir=output_dir, models=models, cancel_file=cancel_file, result_file=result_file,
                      resume_from=resume_from, report_to=hooks.report_to, run_name=hooks.run_name)
    command = launch_command(spec, num_processes, accelerate_config=os.environ.get("DISTILLERY_ACCELERATE_CONFIG"))
    log.info("launching %d processes: %s", num_processes, shlex.join(command))
    child_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, env=child_env,  # its own process group, killed as one
                            preexec_fn=_die_with_parent)
    events, tail = queue.Queue(), deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_read, args=(proc.stdout, events, tail), daemon=True)
    reader.start()
    try:
        done = False
        while not done:
            try:
                line = events.get(timeout=poll_seconds)
            except queue.Empty:
                line = ""
            if line is None:
                done = True
            elif line:
                hooks.on_progress(ProgressEvent(**json.loads(line)))
            if not cancel_file.exists() and hooks.should_stop():
                cancel_file.touch()  # every rank polls it between steps and they agree on one step
        rc = proc.wait()
        reader.join(5)
    finally:
        _kill_group(proc)
    if rc != 0 or not result_file.exists():
        raise LaunchError(f"the {num_processes} training processes exited with status {rc} and no result; "
                          "last output:\n" + "\n".join(tail))
    return result_from_dict(json.loads(result_file.read_text()))


def wait_for_pids(work: Path, count: int, timeout: float = 120.0) -> list[int]:
    """The pids the ranks wrote into the launch dir (for drills and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(work.glob("rank-*.pid"))
        if len(files) >= count:
            return [int(f.read_text()) for f in files]
        time.sleep(0.1)
    raise TimeoutError(f"{count} ranks did not start within {timeout} s")
