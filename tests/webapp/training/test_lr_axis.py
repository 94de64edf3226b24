"""The learning-rate chart's axis reads 5e-5, not Chart.js's default 5.00000E-5 (Chromium, the
real run page and its catch-up over the socket)."""
import re

import pytest

from webapp.catalog.models import ModelVersion
from webapp.lifecycle import JobStatus
from webapp.training.models import MetricPoint, TrainingRun


@pytest.mark.browser
def test_learning_rate_axis_is_readable(transactional_db, page, client, asgi_server, project, researcher, artifacts_dir):
    student = ModelVersion.objects.create(project=project, name="student-1b", role="student", source="org/student")
    run = TrainingRun.objects.create(project=project, name="lr-run", method="dpo", student=student, created_by=researcher,
                                     status=JobStatus.SUCCEEDED, step=50, total_steps=50)
    MetricPoint.objects.bulk_create([MetricPoint(run=run, step=s, values={"loss": 1.0 / s, "lr": 5e-5 * (1 - s / 60)})
                                     for s in range(1, 51)])
    client.force_login(researcher)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    page.goto(f"{asgi_server}/p/{project.slug}/training/runs/{run.id}/")
    page.wait_for_function("() => window.distilleryRun && window.distilleryRun.charts.lr"
                           " && window.distilleryRun.charts.lr.scales.y.ticks.length > 1", timeout=30_000)
    labels = page.evaluate("() => window.distilleryRun.charts.lr.scales.y.ticks.map(t => t.label)")
    page.screenshot(path=str(artifacts_dir / "run-lr-axis.png"), full_page=True)
    assert labels and all(re.fullmatch(r"-?\d(\.\d{1,2})?e-\d+|0", label) for label in labels), labels
    assert "5e-5" in labels or any(label.startswith("4") or label.startswith("5") for label in labels)
    assert page.evaluate("() => window.DistilleryCharts.compactTick(0.00005)") == "5e-5"
    assert page.evaluate("() => window.DistilleryCharts.compactTick(0.25)") == "0.25"
