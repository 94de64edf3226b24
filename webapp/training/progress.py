"""The bridge from a running training loop to the database and the browsers, with no ML in it: a
`RunRecorder` buffers progress events and stores them as metric points once a second (one bulk
write, then one publish), beats the run's heartbeat from a daemon thread (so long precompute stages
with no optimizer step still count as alive), reads the cancel flag there, and keeps a log tail fed
by the logging records of ml/, transformers and trl. The gpu task builds one per claim."""
import collections
import logging
import threading
import time
import warnings

from django.conf import settings
from django.db import close_old_connections, connection

from webapp.training import services
from webapp.training.models import MetricPoint

CAPTURED_LOGGERS = ("ml", "transformers", "trl", "workers", "webapp.training", "py.warnings")
# Deprecation notices the pinned libraries raise about their own internals (TrainingArguments'
# gradient_checkpointing rename and the like): addressed to their developers, not to someone
# reading a run's log, where they buried the lines that matter. Other warnings stay.
QUIET_LIBRARIES = r"(transformers|trl|accelerate|peft|torch|datasets|huggingface_hub)(\.|$)"


def heartbeat_interval() -> float:
    """A beat well inside the reaper's timeout (4 beats per stale window, at most every 5 s)."""
    return max(0.5, min(5.0, settings.RUN_STALE_AFTER_SECONDS / 4))


class _LogTail(logging.Handler):
    def __init__(self, recorder):
        super().__init__(level=logging.INFO)
        self.recorder = recorder
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record):
        if record.name == "celery.redirected" and _is_console_noise(record.getMessage()):
            return
        if record.levelno >= logging.WARNING or record.name.startswith(CAPTURED_LOGGERS):
            self.recorder.log(self.format(record))


def _is_console_noise(text: str) -> bool:
    """Progress bars and the Trainer's per-step log dicts, printed to stdout: the charts show these."""
    text = text.strip()
    return not text or "\r" in text or "%|" in text or (text.startswith("{") and text.endswith("}"))


class RunRecorder:
    """Use as a context manager around the training call; pass `progress` and `should_stop` as hooks."""

    def __init__(self, *, run_id: int, attempt: int, start_step: int = 0, log_tail: str = "",
                 flush_seconds: float = 1.0):
        self.run_id, self.attempt, self.flush_seconds = run_id, attempt, flush_seconds
        self.lost = self.cancel = False
        self.step, self.total_steps, self.stage_text = start_step, 0, ""
        last = MetricPoint.objects.filter(run_id=run_id, step__lte=start_step).order_by("-step").first()
        self.tokens = float(last.tokens) if last else 0.0
        self._points, self._new_lines = [], []
        self._tail = collections.deque(log_tail.splitlines()[-services.LOG_TAIL_LINES:], maxlen=services.LOG_TAIL_LINES)
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._last_flush = self._last_event = self._last_logged = time.monotonic()
        self._handler = _LogTail(self)

    # --- context: heartbeat thread + log capture ------------------------------------------
    def __enter__(self):
        self.cancel = services.run_cancel_requested(run_id=self.run_id)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=QUIET_LIBRARIES)
        logging.getLogger().addHandler(self._handler)
        self._thread = threading.Thread(target=self._beat_loop, name=f"run-{self.run_id}-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        logging.getLogger().removeHandler(self._handler)
        self._warnings.__exit__(*exc)
        self.flush()
        return False

    def _beat_loop(self):
        try:
            while not self._stop.wait(heartbeat_interval()):
                try:
                    if not services.run_heartbeat(run_id=self.run_id, attempt=self.attempt):
                        self.lost = True
                    self.cancel = self.cancel or services.run_cancel_requested(run_id=self.run_id)
                except Exception:  # database briefly away: the next beat retries; the reaper is the judge
                    close_old_connections()
        finally:
            connection.close()

    # --- hooks -------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.cancel or self.lost

    def progress(self, *, step, total_steps, epoch, loss, metrics, tokens_per_s, lr, memory_mb):
        now = time.monotonic()
        self.tokens += tokens_per_s * (now - self._last_event)
        self._last_event, self.step, self.total_steps = now, step, total_steps
        values = {"loss": loss, "lr": lr, "tokens_per_s": tokens_per_s, "memory_mb": memory_mb, **metrics}
        values = {k: float(v) for k, v in values.items() if v is not None}
        with self._lock:
            self._points.append({"step": step, "epoch": float(epoch), "tokens": int(self.tokens), "values": values})
        if now - self._last_logged >= 5 or step == total_steps:
            self._last_logged = now
            logging.getLogger("webapp.training").info("step %d/%d · loss %.4f · lr %.3g · %.0f tok/s", step,
                                                      total_steps, loss, lr, tokens_per_s)
        if now - self._last_flush >= self.flush_seconds:
            self.flush()

    def stage(self, text: str, *, quiet: bool = False) -> None:
        """Names what the run is doing (shown beside the progress bar); `quiet` for frequent updates
        such as a pre-stage's step count, which are neither logged nor flushed more than once a second."""
        self.stage_text = text
        if not quiet:
            logging.getLogger("webapp.training").info("stage: %s", text)
        if not quiet or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def log(self, line: str) -> None:
        with self._lock:
            self._tail.append(line)
            self._new_lines.append(line)

    @property
    def log_tail(self) -> str:
        with self._lock:
            return "\n".join(self._tail)

    def flush(self) -> None:
        """One transaction: store buffered points, beat with progress, publish. Sets `lost` when the
        claim is gone (the reaper failed the run), which stops the training loop."""
        with self._lock:
            points, lines, self._points, self._new_lines = self._points, self._new_lines, [], []
        self._last_flush = time.monotonic()
        fields = {"stage": self.stage_text[:100], "step": self.step}
        if self.total_steps:
            fields["total_steps"] = self.total_steps
        if not services.run_progress_store(run_id=self.run_id, attempt=self.attempt, points=points,
                                           log_lines=lines, log_tail=self.log_tail, **fields):
            self.lost = True
        # Also read here (not only in the heartbeat thread): a cancel then takes effect within a second.
        self.cancel = self.cancel or services.run_cancel_requested(run_id=self.run_id)
