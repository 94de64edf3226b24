"""The DPO collapse guardrail: the rule on hand-made series (a steady fall fires; noise, a small
drift, a rise or a dip that recovers do not), and the run page showing the warning for a run whose
stored logps/chosen fall steadily, and not for a healthy one. Its live updates are in
test_run_socket_browser.py."""
import math
import random

import pytest

from webapp.catalog.models import ModelVersion
from webapp.training.guardrails import collapse_verdict, run_collapse
from webapp.training.models import MetricPoint, TrainingRun


def test_a_steady_fall_is_the_collapse_signature():
    verdict = collapse_verdict([(step, -10.0 - 0.2 * step) for step in range(1, 41)])
    assert verdict is not None and verdict["start_step"] == 1 and verdict["end_step"] == 40
    # Chunks of ten: means at steps 1-10, ..., 31-40 are -11.1 and -17.1.
    assert verdict["from"] == pytest.approx(-11.1) and verdict["to"] == pytest.approx(-17.1)
    assert "rpo_alpha" in verdict["message"]


@pytest.mark.parametrize("series", [
    [-10.0 + random.Random(0).gauss(0, 1.0) for _ in range(60)],        # noise around a level
    [-10.0 - 0.01 * step for step in range(60)],                         # a drift of 0.6 nats: below the floor
    [-20.0 + 0.2 * step for step in range(60)],                          # rising
    [-10.0 - 3 * math.sin(math.pi * step / 59) for step in range(60)],   # fell, then recovered
    [-10.0 - step for step in range(7)],                                 # too few points to say
], ids=["noise", "small-drift", "rising", "recovered", "too-few"])
def test_no_warning_without_a_steady_fall(series):
    assert collapse_verdict(list(enumerate(series))) is None


def test_only_the_recent_window_counts():
    fell_long_ago = [(s, -10.0 - 0.5 * s) for s in range(100)] + [(s, -60.0) for s in range(100, 600)]
    assert collapse_verdict(fell_long_ago) is None


def _run(project, name, logps):
    student = ModelVersion.objects.create(project=project, name=f"student-{name}", role="student", source="org/student")
    run = TrainingRun.objects.create(project=project, name=name, method="dpo", student=student, status="running",
                                     step=len(logps), total_steps=100)
    MetricPoint.objects.bulk_create([MetricPoint(run=run, step=step, values={"loss": 0.6, "logps/chosen": value})
                                     for step, value in enumerate(logps, start=1)])
    return run


@pytest.mark.django_db
def test_the_run_page_warns_when_logps_chosen_falls_steadily(project, client_for, researcher):
    collapsing = _run(project, "dpo-lr-high", [-12.0 - 0.5 * s for s in range(40)])
    healthy = _run(project, "dpo-anchored", [-12.0 + 0.01 * (s % 3) for s in range(40)])
    assert run_collapse(run=collapsing)["end_step"] == 40 and run_collapse(run=healthy) is None
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/training/runs/{collapsing.id}/").content.decode()
    assert 'id="collapse-warning" >' in page and "logps/chosen fell steadily from" in page  # shown
    # Healthy: the element is there for the live updates (static/training/run.js), hidden and empty.
    healthy_page = client.get(f"/p/{project.slug}/training/runs/{healthy.id}/").content.decode()
    assert 'id="collapse-warning" hidden>' in healthy_page and "fell steadily" not in healthy_page


@pytest.mark.django_db
def test_the_run_socket_snapshot_carries_the_verdict(project):
    """A page that (re)connects catches up on the warning too, with the same rule's verdict."""
    from webapp.training.events import run_snapshot

    collapsing = _run(project, "dpo-lr-high", [-12.0 - 0.5 * s for s in range(40)])
    healthy = _run(project, "dpo-anchored", [-12.0 + 0.01 * (s % 3) for s in range(40)])
    verdict = run_snapshot(collapsing)[0]["collapse"]
    assert verdict == run_collapse(run=collapsing) and verdict["end_step"] == 40
    assert run_snapshot(healthy)[0]["collapse"] is None
