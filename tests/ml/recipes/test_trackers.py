"""ml/trackers.py and ml/tracker_runs.py through the recipes' report_to: a run tracked by MLflow (a
local file store) and TensorBoard (event files read back with tensorboard's EventAccumulator) carries
the per-step metrics, the run's config as params and its lineage as tags; DPO (TRL's trainer) reports the same way; an
unknown or missing tracker is refused with the pip package to install."""
import pytest

from ml import tracker_runs, trackers
from ml.recipes import dpo, sft
from ml.recipes.hooks import Hooks

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def _spec(tmp_path, config, report_to=("mlflow", "tensorboard")):
    return trackers.TrackingSpec(
        report_to=report_to, run_name="sft-tiny-7", experiment="distillery-demo", log_dir=tmp_path / "tracking",
        params={"learning_rate": config.learning_rate, "max_steps": config.max_steps, "target": "chosen"},
        tags={"snapshot_hash": "ab12cd", "method": "sft", "distillery.run_id": "7"},
        mlflow_tracking_uri=(tmp_path / "mlruns").as_uri())


def test_sft_run_is_tracked_in_mlflow_and_tensorboard(pairs, make_config, tiny_student_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = make_config("sft", max_steps=3)
    spec, seen = _spec(tmp_path, config), []
    with tracker_runs.tracking(spec, on_links=seen.append) as links:
        hooks = Hooks(report_to=spec.report_to, run_name=spec.run_name)
        result = sft.train(config, pairs, tmp_path / "out", hooks, student=tiny_student_dir)
    assert result.steps == 3 and seen == [links]

    client = mlflow.tracking.MlflowClient(tracking_uri=links["mlflow"]["tracking_uri"])
    run = client.get_run(links["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "sft-tiny-7"
    assert run.data.tags["snapshot_hash"] == "ab12cd" and run.data.tags["method"] == "sft"
    assert run.data.params["distillery.target"] == "chosen" and run.data.params["distillery.max_steps"] == "3"
    assert "learning_rate" in run.data.params  # the TrainingArguments, logged by the library's callback
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3]  # one value per step, from the recipe's own figures
    assert [m.value for m in losses] == pytest.approx([h["loss"] for h in result.history])
    assert client.get_metric_history(run.info.run_id, "nll")  # a recipe metric, not only the library's loss

    events = EventAccumulator(links["tensorboard"]["log_dir"])
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert {"distillery/config/text_summary", "distillery/lineage/text_summary"} <= set(events.Tags()["tensors"])
    lineage = events.Tensors("distillery/lineage/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "ab12cd" in lineage


def test_dpo_reports_through_trl(pairs, make_config, tiny_student_dir, tmp_path):
    config = make_config("dpo", max_steps=2)
    spec = _spec(tmp_path, config, report_to=("mlflow",))
    with tracker_runs.tracking(spec) as links:
        dpo.train(config, pairs, tmp_path / "out", Hooks(report_to=spec.report_to, run_name=spec.run_name),
                  student=tiny_student_dir)
    client = mlflow.tracking.MlflowClient(tracking_uri=links["mlflow"]["tracking_uri"])
    history = client.get_metric_history(links["mlflow"]["run_id"], "loss")
    assert [m.step for m in history] == [1, 2]
    assert client.get_run(links["mlflow"]["run_id"]).data.tags["snapshot_hash"] == "ab12cd"


def test_unknown_or_missing_tracker_is_refused(monkeypatch):
    assert trackers.parse_report_to(" MLflow, tensorboard,mlflow ") == ("mlflow", "tensorboard")
    assert trackers.parse_report_to("none") == trackers.parse_report_to("") == ()
    with pytest.raises(trackers.TrackerError, match="unknown tracker comet"):
        trackers.parse_report_to("comet")
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(trackers.TrackerError, match=r"pip install wandb"):
        trackers.require(("wandb",))
