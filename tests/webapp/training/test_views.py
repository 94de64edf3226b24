"""Training pages and services without a worker: the launch form is built from ml.config and
validates with it, roles are enforced, cancel/resume/reaper move runs through their lifecycle,
presets and clones prefill the form, and the comparison shows config and snapshot diffs."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webapp.training.conftest import DPO_CONFIG, make_snapshot
from webapp.training import services
from webapp.training.models import Checkpoint, MetricPoint, RunPreset, TrainingRun
from webapp.lifecycle import JobStatus

pytestmark = pytest.mark.django_db


def _run(project, researcher, snapshot, demo_models, **config):
    return services.run_create(project=project, created_by=researcher, method="dpo", config={**DPO_CONFIG, **config},
                               snapshot=snapshot, student=demo_models["student"])


@pytest.mark.parametrize("persona,status", [("admin_user", 200), ("researcher", 200), ("annotator", 403), ("outsider", 404)])
def test_training_pages_need_researcher(request, client_for, project, persona, status):
    client = client_for(request.getfixturevalue(persona))
    for url in ("training/", "training/new/?method=adpa_plus", "training/compare/"):
        assert client.get(f"/p/{project.slug}/{url}").status_code == status, url


def test_launch_form_is_built_from_ml_config(client_for, project, researcher):
    page = client_for(researcher).get(f"/p/{project.slug}/training/new/?method=dckd").content.decode()
    assert 'name="cfg:alpha_w"' in page and 'value="0.1"' in page  # ALGORITHMS.md default α_w
    assert "Weight of KL(pi_dpo || student) on the chosen response." in page
    assert 'name="cfg:lora"' in page and 'name="cfg:lr_scheduler"' in page
    nested = client_for(researcher).get(f"/p/{project.slug}/training/new/?method=adpa_plus").content.decode()
    assert 'name="cfg:dckd.alpha_l"' in nested and 'name="cfg:adpa.weight"' in nested and 'value="1.6"' in nested


def _post_data(snapshot, demo_models, **config):
    data = {"method": "dpo", "snapshot": snapshot.id, "student": demo_models["student"].id, "name": "form-run"}
    data.update({f"cfg:{k}": v for k, v in {"learning_rate": "5e-7", "beta": "0.1", "lr_scheduler": "cosine",
                                           "warmup_ratio": "0.1", "num_epochs": 1, "batch_size": 8, "grad_accum": 1,
                                           "max_length": 64, "max_grad_norm": "1.0", "seed": 0, "save_every_steps": 0,
                                           "max_steps": 4, "lora_r": 16, "lora_alpha": 32, "reference": "base",
                                           "precompute_ref_log_probs": "on", **config}.items()})
    return data


def test_launch_validates_hyperparameters_and_queues(client_for, project, researcher, snapshot, demo_models):
    client = client_for(researcher)
    bad = client.post(f"/p/{project.slug}/training/new/?method=dpo", _post_data(snapshot, demo_models, beta="-1"))
    assert bad.status_code == 400 and "beta: -1.0 out of range (must be &gt; 0.0)" in bad.content.decode()
    needs_teacher = client.post(f"/p/{project.slug}/training/new/?method=dpo",
                                _post_data(snapshot, demo_models, reference="teacher"))
    assert needs_teacher.status_code == 400 and "distils from a teacher" in needs_teacher.content.decode()
    assert not TrainingRun.objects.exists()

    ok = client.post(f"/p/{project.slug}/training/new/?method=dpo", _post_data(snapshot, demo_models))
    run = TrainingRun.objects.get()
    assert ok.status_code == 302 and ok.url == f"/p/{project.slug}/training/runs/{run.id}/"
    assert run.status == JobStatus.QUEUED and run.config["learning_rate"] == 5e-7 and run.config["lora"] is False
    assert run.created_by == researcher and run.name == "form-run"


def test_preset_save_and_clone_prefill(client_for, project, researcher, snapshot, demo_models):
    client = client_for(researcher)
    response = client.post(f"/p/{project.slug}/training/new/?method=dpo",
                           {**_post_data(snapshot, demo_models, beta="0.25"), "save_preset": "1", "preset_name": "sharp"})
    preset = RunPreset.objects.get(name="sharp")
    assert response.status_code == 302 and preset.config["beta"] == 0.25 and not TrainingRun.objects.exists()
    assert 'value="0.25"' in client.get(f"/p/{project.slug}/training/new/?preset={preset.id}").content.decode()
    run = _run(project, researcher, snapshot, demo_models, beta=0.3)
    clone_page = client.get(f"/p/{project.slug}/training/new/?clone={run.id}").content.decode()
    assert 'value="0.3"' in clone_page and f'<option value="{snapshot.id}" selected>' in clone_page


def test_cancel_queued_then_resume_from_last_checkpoint(client_for, project, researcher, snapshot, demo_models, tmp_path):
    run = _run(project, researcher, snapshot, demo_models)
    client = client_for(researcher)
    client.post(f"/p/{project.slug}/training/runs/{run.id}/cancel")
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.finished_at is not None
    for step in (3, 6):
        Checkpoint.objects.create(run=run, step=step, path=str(tmp_path / f"checkpoint-{step}"))
    MetricPoint.objects.bulk_create([MetricPoint(run=run, step=s, values={"loss": 1.0 / s}) for s in range(1, 9)])
    client.post(f"/p/{project.slug}/training/runs/{run.id}/resume")
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.resume_from.step == 6 and run.step == 6
    assert list(run.metric_points.values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]  # 7, 8 re-run from 6
    response = client.post(f"/p/{project.slug}/training/runs/{run.id}/resume", follow=True)
    assert "only failed or cancelled runs can be resumed" in response.content.decode()


def test_running_cancel_is_cooperative_and_reaper_fails_silent_runs(project, researcher, snapshot, demo_models, settings):
    run = _run(project, researcher, snapshot, demo_models)
    attempt = services.run_claim(run_id=run.id, worker="w1")
    assert attempt == 1 and services.run_claim(run_id=run.id, worker="w2") is None  # one conditional UPDATE
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING and run.cancel_requested  # the loop stops at its next step
    TrainingRun.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS + 1))
    assert services.runs_reap_stale() == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "heartbeat" in run.error
    assert not services.run_heartbeat(run_id=run.id, attempt=attempt)  # the dead worker's claim is gone


def test_compare_shows_config_and_snapshot_diff(client_for, project, researcher, snapshot, demo_models, tiny_demo_dir):
    other = make_snapshot(project, demo_models["student"], tiny_demo_dir, name="snap-2", count=16, offset=8)
    a = _run(project, researcher, snapshot, demo_models, beta=0.1)
    b = services.run_create(project=project, created_by=researcher, method="dpo", config={**DPO_CONFIG, "beta": 0.5},
                            snapshot=other, student=demo_models["student"])
    page = client_for(researcher).get(f"/p/{project.slug}/training/compare/?runs={a.id}&runs={b.id}").content.decode()
    differs = page.split('id="config-diff"')[1].split("</table>")[0]
    assert '<tr class="differs"><td><code>beta</code></td><td>0.1</td><td>0.5</td>' in differs
    assert '<tr class=""><td><code>batch_size</code></td>' in differs
    snap = page.split('id="snapshot-diff"')[1]
    assert "<td>snap-2</td>" in snap and "<td>8</td><td>8</td><td>8</td>" in snap  # 8 shared, 8 new, 8 dropped


def test_points_json_and_foreign_run_is_404(client_for, project, researcher, snapshot, demo_models, admin_user):
    run = _run(project, researcher, snapshot, demo_models)
    MetricPoint.objects.bulk_create([MetricPoint(run=run, step=s, values={"loss": 1.0 / s}) for s in range(1, 5)])
    client = client_for(researcher)
    data = client.get(f"/p/{project.slug}/training/runs/{run.id}/points.json?after=2").json()
    assert [p["step"] for p in data["points"]] == [3, 4]
    from webapp.projects.services import project_create

    elsewhere = project_create(name="Elsewhere", created_by=admin_user)
    from webapp.projects.services import member_set_role

    member_set_role(project=elsewhere, user=researcher, role="researcher")
    assert client.get(f"/p/{elsewhere.slug}/training/runs/{run.id}/").status_code == 404


def test_launch_form_states_what_the_checkpoint_sample_can_detect(client_for, project, researcher):
    # webapp.training.monitor.detectable_drop: 600 prompts -> 9.9 points, 32 -> 42.7 (5 evaluations, 80% power).
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/training/new/?method=dpo").content.decode()
    assert 'name="eval_sample_size" value="600"' in page
    assert 'At <span class="eval-power-size">600</span> prompts' in page and '<span class="eval-power-drop">9.9</span>' in page
    assert "costs about 18x the time of 32 prompts, which detect only a 43-point fall" in page
    resent = client.post(f"/p/{project.slug}/training/new/?method=dpo", {"method": "dpo", "eval_sample_size": "32"})
    assert resent.status_code == 400 and '<span class="eval-power-drop">42.7</span>' in resent.content.decode()


def test_run_page_states_what_its_checkpoint_sample_can_detect(client_for, project, researcher, snapshot, demo_models):
    from webapp.catalog.models import PromptSet
    from webapp.training.checkpoint_evals import run_eval_settings_set

    run = _run(project, researcher, snapshot, demo_models)
    heldout = PromptSet.objects.create(project=project, name="heldout")
    run_eval_settings_set(run=run, prompt_set=heldout, every=10, sample_size=100, judge="likelihood")
    page = " ".join(client_for(researcher).get(f"/p/{project.slug}/training/runs/{run.id}/").content.decode().split())
    assert "catches a fall of 24 points or more between two of 5 evaluations" in page  # detectable_drop(100) = 0.2417
