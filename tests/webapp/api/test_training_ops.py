"""Training through the API, on rows only (no worker): a launch takes the method's defaults for
what the body leaves out and stores exactly what the launch page would; status, metrics, cancel,
resume and rerun are the run page's services; a checkpoint registers as a model version with its
lineage, once."""
import shutil

import pytest

from ml.config import config_from_dict, config_to_dict
from tests.webapp.training.conftest import demo_models, snapshot  # noqa: F401  (fixtures)
from webapp.training.models import Checkpoint, TrainingRun

pytestmark = pytest.mark.django_db


def test_launch_status_cancel_resume_rerun_and_register(project, researcher, api_as, demo_models, snapshot,  # noqa: F811
                                                        tiny_demo_dir, tmp_path):
    api, base = api_as(researcher, project), f"/projects/{project.slug}/runs"
    launched = api.call("POST", base, {"method": "dpo", "snapshot": snapshot.pk, "student": demo_models["student"].pk,
                                       "config": {"max_steps": 3, "learning_rate": 1e-3, "lr_scheduler": "constant"}})
    assert launched.status_code == 202, launched.content
    job = launched.json()["job"]
    run = TrainingRun.objects.get(pk=job["id"])
    assert run.config == config_to_dict(config_from_dict("dpo", {"max_steps": 3, "learning_rate": 1e-3,
                                                                 "lr_scheduler": "constant"}))
    assert job["status"] == "queued" and launched.json()["url"] == f"/api/v1{base}/{run.pk}"
    assert api.call("GET", f"{base}/{run.pk}/metrics").json()["points"] == []
    assert api.call("POST", f"{base}/{run.pk}/cancel").json()["job"]["status"] == "cancelled"
    assert api.call("POST", f"{base}/{run.pk}/cancel").status_code == 422  # the page's rule: only active runs
    assert api.call("POST", f"{base}/{run.pk}/resume").json()["job"]["status"] == "queued"
    rerun = api.call("POST", f"{base}/{run.pk}/rerun").json()["job"]
    again = TrainingRun.objects.get(pk=rerun["id"])
    assert again.cloned_from_id == run.pk and again.config == run.config and again.snapshot_id == snapshot.pk

    saved = shutil.copytree(tiny_demo_dir / "student", tmp_path / "checkpoint-2")  # as the worker writes one
    Checkpoint.objects.create(run=run, step=2, path=str(saved))
    registered = api.call("POST", f"{base}/{run.pk}/checkpoints/2/register")
    assert registered.status_code == 201
    version = registered.json()
    assert (version["parent"], version["produced_by"], version["snapshot"]) == (demo_models["student"].pk, run.pk, snapshot.pk)
    assert api.call("POST", f"{base}/{run.pk}/checkpoints/2/register").json()["id"] == version["id"]
    assert api.call("POST", f"{base}/{run.pk}/checkpoints/9/register").status_code == 404
