"""Reads for training runs: the project's run list, metric histories, and the comparisons of several
runs (flattened config diff, snapshot diff by pair content)."""
import hashlib

from webapp.annotation.models import PreferencePair
from webapp.training.models import MetricPoint, RunPreset, TrainingRun


def runs_for(*, project):
    return (TrainingRun.objects.filter(project=project)
            .select_related("student", "snapshot", "created_by").order_by("-created_at"))


def tracker_links(*, run) -> list[dict]:
    """The run's tracker runs for its page: [{"name", "url", "text", "detail"}], from run.trackers
    (written by the worker as it opens them); a file-based tracker has no URL, only where to look."""
    links, trackers = [], run.trackers or {}
    if (mlflow := trackers.get("mlflow")):
        links.append({"name": "MLflow", "url": mlflow.get("url", ""), "text": f"run {mlflow.get('run_id', '')}",
                      "detail": f"experiment {mlflow.get('experiment_id', '')} · {mlflow.get('tracking_uri', '')}"})
    if (tb := trackers.get("tensorboard")):
        links.append({"name": "TensorBoard", "url": "", "text": tb.get("log_dir", ""),
                      "detail": f"tensorboard --logdir {tb.get('log_dir', '')}"})
    if (wandb := trackers.get("wandb")):
        links.append({"name": "W&B", "url": wandb.get("url", ""), "text": f"run {wandb.get('run_id', '')}",
                      "detail": f"project {wandb.get('project', '')} · {wandb.get('mode', '')} · {wandb.get('log_dir', '')}"})
    if (trackio := trackers.get("trackio")):
        links.append({"name": "Trackio", "url": "", "text": f"run {trackio.get('run_name', '')}",
                      "detail": f"project {trackio.get('project', '')} (trackio show)"})
    return links


def presets_for(*, project):
    return RunPreset.objects.filter(project=project).order_by("method", "name")


def run_points(*, run, after_step: int = -1) -> list[dict]:
    points = MetricPoint.objects.filter(run=run, step__gt=after_step).order_by("step")
    return [{"step": p.step, "epoch": p.epoch, "tokens": p.tokens, "values": p.values} for p in points]


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def config_diff(runs: list) -> list[dict]:
    """One row per config key (plus method and inputs): the value in each run, and whether they differ.
    Rows that differ come first."""
    flats = [{"method": r.method, "student": r.student.name, "snapshot": r.snapshot.name if r.snapshot else "",
              "teacher": r.teacher.name if r.teacher else "", **_flatten(r.config)} for r in runs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    rows = [{"key": k, "values": [flat.get(k, "—") for flat in flats]} for k in keys]
    for row in rows:
        row["differs"] = len({repr(v) for v in row["values"]}) > 1
    return sorted(rows, key=lambda row: not row["differs"])


def _pair_digests(snapshot) -> set[str]:
    rows = PreferencePair.objects.filter(snapshot=snapshot).values_list("prompt_text", "chosen_text", "rejected_text")
    return {hashlib.sha256("\x1f".join(row).encode()).hexdigest() for row in rows}


def snapshot_diff(runs: list) -> list[dict]:
    """Each distinct snapshot of the runs against the first one: pairs shared, only here, only there."""
    snapshots = list(dict.fromkeys(r.snapshot for r in runs if r.snapshot is not None))
    if not snapshots:
        return []
    base = _pair_digests(snapshots[0])
    out = []
    for snapshot in snapshots:
        digests = base if snapshot == snapshots[0] else _pair_digests(snapshot)
        out.append({"snapshot": snapshot, "runs": [r.id for r in runs if r.snapshot_id == snapshot.id],
                    "shared": len(digests & base), "only_here": len(digests - base), "only_base": len(base - digests)})
    return out
