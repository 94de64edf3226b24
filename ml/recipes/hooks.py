"""What a recipe tells its caller and what the caller may ask of it: `Hooks` (a progress callback, a
cooperative stop flag checked between optimizer steps, the experiment trackers to report to), the
`ProgressEvent` sent after each step, and the `TrainResult` every recipe returns. Plain data, so a
Celery task or the CLI can bridge them to WebSockets or a tqdm bar without the recipe knowing."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class ProgressEvent:
    step: int  # optimizer steps done, counted from the start of the run (a resumed run continues)
    total_steps: int
    epoch: float  # fractional: 1.5 = half-way through the second epoch
    loss: float
    metrics: dict  # name -> float, the loss's own metrics averaged over the step's micro-batches
    tokens_per_s: float
    lr: float
    memory_mb: float  # peak accelerator memory (CUDA) or the process's peak RSS on CPU


def _never() -> bool:
    return False


def _ignore(event: ProgressEvent) -> None:
    return None


@dataclass
class Hooks:
    on_progress: Callable[[ProgressEvent], None] = _ignore
    should_stop: Callable[[], bool] = _never
    report_to: tuple = ()  # experiment trackers for the trainer's own report_to (ml.trackers), e.g. ("mlflow",)
    run_name: str = ""  # the run's name in those trackers


@dataclass
class TrainResult:
    final_dir: Path  # HF model dir (safetensors + tokenizer) of the last weights; a checkpoint if stopped
    steps: int
    metrics: dict  # last step's loss and metrics
    checkpoints: list = field(default_factory=list)  # resumable checkpoint dirs, oldest first
    stopped: bool = False  # True when should_stop() ended the run early (final_dir is then resumable)
    history: list = field(default_factory=list)  # per step: {"step", "loss", "lr", **metrics}
