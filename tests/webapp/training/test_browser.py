"""The researcher's whole journey in Chromium against daphne and real Celery workers: launch a short
DPO run on the demo snapshot from the form, watch the loss chart gain points without reloading,
cancel, resume (the step count continues from the cancel's checkpoint), and see the run finish and
register a new student model version."""
import pytest

from webapp.catalog.models import ModelVersion
from webapp.training.models import MetricPoint, TrainingRun
from webapp.lifecycle import JobStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STEPS = 400


def _series_length(page) -> int:
    return page.evaluate("() => (window.distilleryRun.series.loss || {data: []}).data.length")


def test_launch_watch_cancel_resume_complete(page, client, asgi_server, celery_workers, project, researcher, snapshot,
                                             demo_models, artifacts_dir):
    client.force_login(researcher)  # a real session row; the browser carries its cookie
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    response = page.goto(f"{asgi_server}/p/{project.slug}/training/new/?method=dpo")
    assert response.status == 200, page.content()[:3000]
    page.select_option("select[name=snapshot]", str(snapshot.id))
    page.select_option("select[name=student]", str(demo_models["student"].id))
    for name, value in {"max_steps": STEPS, "batch_size": 4, "grad_accum": 2, "max_length": 64,
                        "learning_rate": "1e-3", "warmup_ratio": "0", "lr_scheduler": None}.items():
        if value is None:
            page.select_option("select[name='cfg:lr_scheduler']", "constant")
        else:
            page.fill(f"input[name='cfg:{name}']", str(value))
    page.screenshot(path=str(artifacts_dir / "training-launch-form.png"), full_page=True)
    page.click("#launch")
    page.wait_for_url("**/training/runs/*/")
    run = TrainingRun.objects.get(project=project)

    # Live: the loss chart gains points while we only watch.
    page.wait_for_function("() => (window.distilleryRun.series.loss || {data: []}).data.length >= 3", timeout=120_000)
    first = _series_length(page)
    page.wait_for_function(f"() => window.distilleryRun.series.loss.data.length > {first}", timeout=60_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # no reload happened
    page.screenshot(path=str(artifacts_dir / "training-run-live.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-button")
    page.wait_for_selector("#run-status[data-status=cancelled]", timeout=120_000)
    run.refresh_from_db()
    stopped_at = run.step
    assert run.status == JobStatus.CANCELLED and 0 < stopped_at < STEPS
    assert page.text_content("#run-step") == str(stopped_at)
    assert page.is_visible("#resume-button") and not page.is_visible("#cancel-button")

    page.click("#resume-button")
    page.wait_for_selector("#run-status[data-status=succeeded]", timeout=240_000)
    page.wait_for_function(f"() => window.distilleryRun.lastStep === {STEPS}", timeout=30_000)
    steps = page.evaluate("() => window.distilleryRun.points.map(p => p.step)")
    assert steps == list(range(1, STEPS + 1))  # continues from the checkpoint: no restart at 1, no gap
    run.refresh_from_db()
    assert run.resume_from.step == stopped_at and run.attempt == 2
    assert list(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == list(range(1, STEPS + 1))
    version = ModelVersion.objects.get(produced_by=run)
    assert version.parent == demo_models["student"] and version.snapshot == snapshot
    assert page.text_content("#run-version") == version.name
    page.screenshot(path=str(artifacts_dir / "training-run-finished.png"), full_page=True)

    page.goto(f"{asgi_server}/p/{project.slug}/training/")
    page.wait_for_selector(f"tr[data-run-id='{run.id}'] [data-status=succeeded]")
