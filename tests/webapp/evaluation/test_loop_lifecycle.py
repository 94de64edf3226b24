"""The loop round on the shared job lifecycle, as a researcher meets it on the loop page: a round
whose worker died (running, heartbeat silent past the grace) never blocks the next round; a queued
or running round can be cancelled from the page, and a failed or cancelled one rerun; annotators
can do neither."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp import lifecycle
from webapp.evaluation import loop_services
from webapp.evaluation.models import LoopRound

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project, tiny_demo_dir):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    return {"teacher": teacher, "student": student, "prompt_set": import_demo_prompts(project, tiny_demo_dir)}


def _start(project, world, researcher):
    return loop_services.loop_round_start(project=project, student=world["student"], teacher=world["teacher"],
                                          prompt_set=world["prompt_set"], prompt_count=5, created_by=researcher)


def test_a_crashed_round_never_blocks_the_next_one(project, world, researcher, client_for, settings):
    crashed = _start(project, world, researcher)
    attempt = lifecycle.job_claim(LoopRound, pk=crashed.pk, worker="gpu@dead")
    assert attempt == 1
    # The worker was SIGKILLed: no finish, and its heartbeat stops.
    silent = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 5)
    LoopRound.objects.filter(pk=crashed.pk).update(heartbeat_at=silent)
    data = {"student": world["student"].id, "teacher": world["teacher"].id, "prompt_set": world["prompt_set"].id,
            "prompt_count": 5}
    response = client_for(researcher).post(f"/p/{project.slug}/loop/", data)
    assert response.status_code == 302
    crashed.refresh_from_db()
    assert crashed.status == "failed" and "No heartbeat" in crashed.error
    assert list(LoopRound.objects.filter(project=project).values_list("number", "status")) == [(1, "failed"), (2, "queued")]
    # A late write from the dead attempt changes nothing.
    assert not loop_services.loop_round_finish(loop_round=crashed, attempt=attempt, stats={"prompts": 5})


def test_a_live_round_still_blocks(project, world, researcher):
    live = _start(project, world, researcher)
    lifecycle.job_claim(LoopRound, pk=live.pk, worker="gpu@alive")
    with pytest.raises(Exception, match="already in progress"):
        _start(project, world, researcher)


def test_cancel_and_rerun_from_the_loop_page(project, world, researcher, client_for):
    loop_round = _start(project, world, researcher)
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/loop/").content.decode()
    assert 'class="round-cancel"' in page and 'class="round-rerun"' not in page
    assert client.post(f"/p/{project.slug}/loop/{loop_round.id}/cancel").status_code == 302
    loop_round.refresh_from_db()
    assert loop_round.status == "cancelled"
    page = client.get(f"/p/{project.slug}/loop/").content.decode()
    assert 'class="round-rerun"' in page and 'class="round-cancel"' not in page
    assert client.post(f"/p/{project.slug}/loop/{loop_round.id}/rerun").status_code == 302
    loop_round.refresh_from_db()
    assert loop_round.status == "queued" and loop_round.number == 1
    # Rerun is only for failed or cancelled rounds.
    response = client.post(f"/p/{project.slug}/loop/{loop_round.id}/rerun", follow=True)
    assert "only failed or cancelled" in response.content.decode()


def test_a_running_round_is_asked_to_stop(project, world, researcher, client_for):
    loop_round = _start(project, world, researcher)
    attempt = lifecycle.job_claim(LoopRound, pk=loop_round.pk, worker="gpu@1")
    client_for(researcher).post(f"/p/{project.slug}/loop/{loop_round.id}/cancel")
    assert loop_services.loop_round_progress(loop_round=loop_round, attempt=attempt, stage="answers", done=1,
                                             total=10) == lifecycle.CANCEL


@pytest.mark.parametrize("persona,status", [("annotator", 403), ("outsider", 404)])
def test_only_researchers_cancel_or_rerun(request, project, world, researcher, client_for, persona, status):
    loop_round = _start(project, world, researcher)
    client = client_for(request.getfixturevalue(persona))
    assert client.post(f"/p/{project.slug}/loop/{loop_round.id}/cancel").status_code == status
    assert client.post(f"/p/{project.slug}/loop/{loop_round.id}/rerun").status_code == status
    loop_round.refresh_from_db()
    assert loop_round.status == "queued"


def test_rerun_while_another_round_is_active_is_refused_by_the_constraint(project, world, researcher):
    """Issue 22: one round in progress per project is a database constraint (no check-then-update);
    a rerun that would make a second one answers the reason and leaves the round as it was."""
    from django.core.exceptions import ValidationError

    first = _start(project, world, researcher)
    LoopRound.objects.filter(pk=first.pk).update(status=lifecycle.JobStatus.FAILED)
    _start(project, world, researcher)  # queued
    first.refresh_from_db()
    with pytest.raises(ValidationError, match="already in progress"):
        loop_services.loop_round_rerun(loop_round=first)
    first.refresh_from_db()
    assert first.status == lifecycle.JobStatus.FAILED
    assert LoopRound.objects.filter(project=project, status__in=lifecycle.ACTIVE).count() == 1
