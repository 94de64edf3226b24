"""Experiment trackers on a real training run (workers/trackers.py): the deployment's REPORT_TO sends
a run to MLflow (a local file store) and TensorBoard; the MLflow run carries the run's config as
params, its snapshot hash and lineage as tags, and the per-step metrics; the run page links it. A
run's own report_to overrides the deployment's, and an unknown tracker is refused at launch."""
import pytest
from django.core.exceptions import ValidationError

from tests.workers.test_training_tasks import _create, setup, unconsumed_queue  # noqa: F401  (fixtures)
from webapp.training import services
from workers.tasks.gpu.training import train_run

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")
pytestmark = pytest.mark.django_db(transaction=True)


def test_run_reports_to_the_deployments_trackers_and_its_page_links_them(setup, settings, tmp_path, client):
    settings.REPORT_TO, settings.TRACKING_DIR, settings.MLFLOW_TRACKING_URI = "mlflow,tensorboard", tmp_path / "tr", ""
    run = _create(setup, config={"batch_size": 4, "grad_accum": 1, "max_length": 64, "max_steps": 3})
    assert train_run(run.id) == "succeeded"
    run.refresh_from_db()
    link = run.trackers["mlflow"]
    store = mlflow.tracking.MlflowClient(tracking_uri=link["tracking_uri"])
    tracked = store.get_run(link["run_id"])
    assert tracked.info.status == "FINISHED" and tracked.info.run_name == run.name
    assert tracked.data.tags["snapshot_hash"] == run.snapshot.content_hash
    assert tracked.data.tags["distillery.run_id"] == str(run.id) and "tiny-student" in tracked.data.tags["student"]
    assert tracked.data.params["distillery.beta"] == str(run.config["beta"])
    assert [m.step for m in store.get_metric_history(link["run_id"], "loss")] == [1, 2, 3]
    assert list((tmp_path / "tr" / f"run-{run.id}" / "tensorboard").glob("events.out.tfevents.*"))

    client.force_login(setup["user"])
    page = client.get(f"/p/{setup['project'].slug}/training/runs/{run.id}/").content.decode()
    assert 'id="run-trackers"' in page and link["run_id"] in page and "tensorboard --logdir" in page


def test_a_runs_own_report_to_overrides_the_deployments(setup, settings):
    settings.REPORT_TO = "mlflow"
    assert services.run_report_to(_create(setup, report_to="none")) == ()
    assert services.run_report_to(_create(setup, report_to="TensorBoard")) == ("tensorboard",)
    assert services.run_report_to(_create(setup)) == ("mlflow",)
    with pytest.raises(ValidationError, match="unknown tracker"):
        _create(setup, report_to="comet")
