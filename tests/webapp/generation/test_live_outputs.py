"""A running generation job's page shows its outputs as they are stored, newest first and as text,
with the time left; outputs.json pages by generation id and refuses a bad cursor."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.webapp.conftest import browser_login
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.generation.models import Generation, GenerationJob

XSS = "<img src=x onerror=\"window.__xss = 1\">"


def _job(project):
    mv = ModelVersion.objects.create(project=project, name="student-1b", role="student", source="org/student")
    prompt_set = PromptSet.objects.create(project=project, name="tasks")
    prompts = [Prompt.objects.create(prompt_set=prompt_set, text=f"What is {i} + {i}?", content_hash=f"h{i}") for i in range(6)]
    now = timezone.now()
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, status="running", attempt=1, started_at=now,
                                       heartbeat_at=now, progress_done=2, progress_total=6, eta_at=now + timedelta(seconds=150))
    job.model_versions.set([mv])
    return job, mv, prompts


def _store(job, mv, prompt, text):
    return Generation.objects.create(job=job, prompt=prompt, model_version=mv, text=text, token_count=2)


@pytest.mark.django_db
def test_outputs_json_pages_by_id(client_for, project, researcher):
    job, mv, prompts = _job(project)
    first = _store(job, mv, prompts[0], "0")
    second = _store(job, mv, prompts[1], "2")
    client = client_for(researcher)
    body = client.get(f"/p/{project.slug}/generation/{job.pk}/outputs.json?after={first.pk}").json()
    assert [o["id"] for o in body["outputs"]] == [second.pk] and body["outputs"][0]["prompt"] == "What is 1 + 1?"
    assert body["done"] == 2 and body["total"] == 6 and 100 <= body["eta_seconds"] <= 150
    for bad in ("x", "1e309", "9" * 40):
        response = client.get(f"/p/{project.slug}/generation/{job.pk}/outputs.json?after={bad}")
        assert response.status_code in (200, 400) and (response.status_code == 400 or response.json()["outputs"] == [])


@pytest.mark.browser
def test_running_job_page_shows_outputs_as_they_arrive(transactional_db, asgi_server, page, project, researcher, artifacts_dir):
    job, mv, prompts = _job(project)
    _store(job, mv, prompts[0], "0")
    _store(job, mv, prompts[1], XSS)
    browser_login(page, asgi_server, researcher.username)
    page.goto(f"{asgi_server}/p/{project.slug}/generation/{job.pk}/")
    page.wait_for_function("document.querySelectorAll('#live-list .live-output').length === 2")
    assert "about 2 min left" in page.inner_text("#eta") or "about 3 min left" in page.inner_text("#eta")

    def more():  # the worker stores the next batch (from another thread: Playwright's loop runs in this one)
        try:
            for prompt, text in zip(prompts[2:5], ("4", "6", "8")):
                _store(job, mv, prompt, text)
            GenerationJob.objects.filter(pk=job.pk).update(progress_done=5, eta_at=timezone.now() + timedelta(seconds=20))
        finally:
            connection.close()

    thread = threading.Thread(target=more)
    thread.start()
    thread.join()
    page.wait_for_function("document.querySelectorAll('#live-list .live-output').length === 5", timeout=15_000)
    page.wait_for_function("document.getElementById('eta').textContent.includes('5 / 6')")
    page.wait_for_function("document.querySelector('.job-progress .job-count').textContent === '5 / 6'")
    page.screenshot(path=str(artifacts_dir / "generation-live-outputs.png"), full_page=True)
    texts = page.eval_on_selector_all("#live-list .generation-text", "els => els.map(e => e.textContent)")
    assert texts == ["8", "6", "4", XSS, "0"]  # newest first, the payload as text
    assert page.evaluate("window.__xss") is None and page.query_selector("#live-list img") is None
    assert "s left" in page.inner_text("#eta")
