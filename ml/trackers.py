"""Experiment trackers (TensorBoard, MLflow, W&B, Trackio) for a training run, through the trainers' own
`report_to`: the names, the spec of what a run tells its trackers, and the TrainingArguments fields.
STANDARD LIBRARY ONLY (the web app validates a run's report_to with it); opening the tracker runs
lives in ml.tracker_runs. The recipes pass `Hooks.report_to` to TrainingArguments / trl.DPOConfig,
and transformers' reporting callbacks do the logging."""
import dataclasses
import importlib.util
import os
from pathlib import Path

# name -> (module the callback imports, pip package that provides it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny"),
            "wandb": ("wandb", "wandb"), "trackio": ("trackio", "trackio")}
PARAM_PREFIX = "distillery."  # our params beside the Trainer's own (MLflow params cannot be logged twice)
MAX_PARAM_CHARS = 250  # MLflow's limit on a param value


class TrackerError(ValueError):
    """A report_to naming an unknown tracker, or one whose library is not installed."""


def parse_report_to(value) -> tuple[str, ...]:
    """"tensorboard,mlflow" (or a list) -> ("tensorboard", "mlflow"); "" and "none" -> (). Raises
    TrackerError for an unknown name."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    names = [n.strip().lower() for n in names if n and n.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise TrackerError(f"unknown tracker {', '.join(unknown)} (known: {', '.join(TRACKERS)}, or none)")
    return tuple(dict.fromkeys(names))


def require(names) -> None:
    """Raises TrackerError naming the pip package of each tracker library that is not installed."""
    missing = [TRACKERS[n] for n in names if importlib.util.find_spec(TRACKERS[n][0]) is None]
    if missing:
        raise TrackerError("experiment tracking needs " + ", ".join(
            f"{module} (pip install {package})" for module, package in missing) + " on the gpu worker")


@dataclasses.dataclass(frozen=True)
class TrackingSpec:
    """What the trackers are told about one training run. `params`: the method's config (flattened);
    `tags`: run id, method, snapshot hash, models and lineage; `log_dir`: where file-based trackers
    write (TensorBoard events, W&B offline runs, an MLflow file store when no URI is given)."""

    report_to: tuple[str, ...]
    run_name: str
    experiment: str
    log_dir: Path
    params: dict = dataclasses.field(default_factory=dict)
    tags: dict = dataclasses.field(default_factory=dict)
    mlflow_tracking_uri: str = ""
    mlflow_ui_url: str = ""  # base URL of the MLflow UI, for the run page's link (else the tracking URI if http)


def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def trainer_kwargs(report_to, run_name: str = "") -> dict:
    """The TrainingArguments fields for `report_to` (list, as the library expects; [] = none)."""
    names = list(report_to or ())
    kwargs = {"report_to": names}
    if names and run_name:
        kwargs["run_name"] = run_name
    if "trackio" in names:
        kwargs.update(project=os.environ.get("TRACKIO_PROJECT", "distillery"), trackio_space_id=None)
    return kwargs
