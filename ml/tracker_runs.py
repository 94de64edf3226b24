"""Opening a training run's experiment-tracker runs (ml.trackers names them). `tracking(spec)` wraps
the recipe call: it checks the libraries are installed (naming the pip package when one is not),
opens the tracker run up front so its link is known before the first step (MLflow: a run created
with the run's config as params and its snapshot hash and lineage as tags, which transformers'
MLflowCallback then resumes through MLFLOW_RUN_ID; TensorBoard: the log dir, with the config and
lineage as text), and sets the environment the callbacks read for the length of the block (a gpu
worker runs one task at a time; the ranks of a multi-process run inherit it). W&B runs offline
unless WANDB_API_KEY or WANDB_MODE says otherwise. Tracker libraries are imported only when asked for."""
import contextlib
import json
import os
import uuid
from pathlib import Path

from ml.trackers import MAX_PARAM_CHARS, PARAM_PREFIX, TrackingSpec, flatten, require

LINEAGE_ENV = "DISTILLERY_TRACKER_LINEAGE"  # the config and lineage, for tracker_callbacks (JSON)


@contextlib.contextmanager
def _environ(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def tracking(spec: TrackingSpec | None, on_links=None):
    """Opens the spec's tracker runs, calls on_links(links) once they are known (links: tracker ->
    {"run_id", "url", "log_dir", ...}), and sets the callbacks' environment for the block. Yields
    the links ({} when nothing is tracked)."""
    if spec is None or not spec.report_to:
        yield {}
        return
    require(spec.report_to)
    log_dir = Path(spec.log_dir)
    env, links = {}, {}
    if "tensorboard" in spec.report_to:
        links["tensorboard"] = _open_tensorboard(spec, log_dir / "tensorboard")
        env["TENSORBOARD_LOGGING_DIR"] = links["tensorboard"]["log_dir"]
    if "mlflow" in spec.report_to:
        links["mlflow"] = _open_mlflow(spec, log_dir)
        env.update(MLFLOW_TRACKING_URI=links["mlflow"]["tracking_uri"], MLFLOW_RUN_ID=links["mlflow"]["run_id"],
                   MLFLOW_EXPERIMENT_NAME=spec.experiment)
    if "wandb" in spec.report_to:
        links["wandb"], wandb_env = _wandb_env(spec, log_dir / "wandb")
        env.update(wandb_env)
    if "trackio" in spec.report_to:
        links["trackio"] = {"project": spec.experiment, "run_name": spec.run_name}
        env.update(TRACKIO_PROJECT=spec.experiment,
                   **{LINEAGE_ENV: json.dumps({**spec.params, "lineage": spec.tags}, default=str)})
    failed = False
    with _environ(env):
        # The W&B run starts here with the config and lineage; its callback finds the active run (or,
        # in a launched rank, resumes it by id).
        started = [_start_wandb(spec, links["wandb"])] if "wandb" in links else []
        if on_links is not None:
            on_links(links)
        try:
            yield links
        except BaseException:
            failed = True
            raise
        finally:
            if "mlflow" in links:
                _close_mlflow(links["mlflow"], failed)
            for finish in started:
                finish(failed)


def _open_tensorboard(spec: TrackingSpec, log_dir: Path) -> dict:
    """The log dir, with the run's config and lineage as text (the TensorBoardCallback adds the
    TrainingArguments and the scalars in its own event file beside this one)."""
    from torch.utils.tensorboard import SummaryWriter

    log_dir.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(log_dir), filename_suffix=".distillery")
    writer.add_text("distillery/config", "```\n" + json.dumps(spec.params, indent=2, default=str) + "\n```")
    writer.add_text("distillery/lineage", "\n".join(f"- **{k}**: {v}" for k, v in sorted(spec.tags.items())))
    writer.close()
    return {"log_dir": str(log_dir)}


def _open_mlflow(spec: TrackingSpec, log_dir: Path) -> dict:
    """Creates the MLflow run (not left active: the MLflowCallback starts it again by id, in this
    process or in rank 0 of a launched group), with the config as params and the lineage as tags."""
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = spec.mlflow_tracking_uri or (log_dir / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):  # MLflow 3 keeps its file store behind an opt-in (a server or sqlite:// need none)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(spec.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(spec.experiment)
    tags = {"mlflow.runName": spec.run_name, **{k: str(v) for k, v in spec.tags.items()}}
    run = client.create_run(experiment_id, run_name=spec.run_name, tags=tags)
    params = [Param(PARAM_PREFIX + k, str(v)[:MAX_PARAM_CHARS]) for k, v in sorted(flatten(spec.params).items())]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    client.log_batch(run.info.run_id, tags=[RunTag("distillery.config", json.dumps(spec.params, default=str)[:5000])])
    base = spec.mlflow_ui_url or (uri if uri.startswith("http") else "")
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run.info.run_id}" if base else ""
    return {"run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": uri, "url": url}


def _close_mlflow(link: dict, failed: bool) -> None:
    """Ends the run if the callback did not (a failure, or training that never began)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    active = mlflow.active_run()
    if active is not None and active.info.run_id == link["run_id"]:
        mlflow.end_run("FAILED" if failed else "FINISHED")
    client = MlflowClient(tracking_uri=link["tracking_uri"])
    if client.get_run(link["run_id"]).info.status == "RUNNING":
        client.set_terminated(link["run_id"], "FAILED" if failed else "FINISHED")


def _wandb_env(spec: TrackingSpec, wandb_dir: Path) -> tuple[dict, dict]:
    """W&B's environment: a run id chosen here (the link), its dir, offline unless a key or
    WANDB_MODE says otherwise (an offline run is uploaded later with `wandb sync <dir>`)."""
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    env = {"WANDB_PROJECT": spec.experiment, "WANDB_DIR": str(wandb_dir), "WANDB_RUN_ID": run_id,
           "WANDB_NAME": spec.run_name, "WANDB_MODE": mode, "WANDB_RESUME": "allow"}
    return {"run_id": run_id, "project": spec.experiment, "mode": mode, "log_dir": str(wandb_dir)}, env


def _start_wandb(spec: TrackingSpec, link: dict):
    import wandb

    tags = [f"{k}:{v}"[:64] for k, v in sorted(spec.tags.items()) if k in ("method", "snapshot_hash", "distillery.run_id")]
    run = wandb.init(project=spec.experiment, name=spec.run_name, id=link["run_id"], dir=link["log_dir"],
                     mode=link["mode"], config={"distillery": {**spec.params, "lineage": spec.tags}}, tags=tags)
    link["url"] = run.url or ""  # online only
    return lambda failed: run.finish(exit_code=1 if failed else 0)


def tracker_callbacks(report_to) -> list:
    """TrainerCallbacks a recipe adds beside the reporting ones: Trackio's callback starts its run
    afresh when training begins (its config replaced by the TrainingArguments), so the config and
    lineage (LINEAGE_ENV, set by `tracking`) are added right after it."""
    if "trackio" not in (report_to or ()) or not os.environ.get(LINEAGE_ENV):
        return []
    from transformers import TrainerCallback

    class TrackioLineage(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                import trackio

                trackio.config.update({"distillery": json.loads(os.environ[LINEAGE_ENV])}, allow_val_change=True)

    return [TrackioLineage()]


