"""In Chromium against daphne: a generation job whose worker died is failed by the reaper, its page
says so and offers Rerun; clicking it queues the job again and the page says so."""
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp import lifecycle
from webapp.catalog.models import PromptSet
from webapp.generation.models import GenerationJob
from webapp.lifecycle import JobStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reaped_job_is_rerun_from_its_page(page, client, asgi_server, project, researcher, settings, artifacts_dir):
    settings.JOB_STALE_AFTER_SECONDS = 60
    prompt_set = PromptSet.objects.create(project=project, name="p")
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, status=JobStatus.QUEUED)
    # (lifecycle's own functions publish nothing: the test process shares its thread with Playwright's loop)
    attempt = lifecycle.job_claim(GenerationJob, pk=job.pk, worker="gpu@gone")
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=300))
    assert lifecycle.jobs_reap_stale(GenerationJob) == [job.pk]

    client.force_login(researcher)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    page.goto(f"{asgi_server}/p/{project.slug}/generation/{job.pk}/")
    assert "No heartbeat from its worker" in page.inner_text(".job-error")
    assert "Rerun it" in page.inner_text(".job-error")  # the message names the button that exists
    page.screenshot(path=str(artifacts_dir / "generation-job-reaped.png"), full_page=True)
    page.click("#rerun-button")
    # The session's gpu worker may claim and finish the rerun at once (the page then moves on past its
    # "queued again" message), so wait for the job itself to leave "failed".
    for _ in range(120):
        job.refresh_from_db()
        if job.status != JobStatus.FAILED:
            break
        page.wait_for_timeout(500)
    page.wait_for_load_state()
    job.refresh_from_db()
    assert job.status != JobStatus.FAILED and job.error == "" and job.attempt >= attempt
    assert page.locator("#rerun-button").count() == 0  # no longer failed: no button
