"""Generation pages: starting a job from the form (queued for the gpu queue), validation, roles,
cancelling a queued job, and the results page."""
import pytest

from tests.webapp.annotation.conftest import make_world
from webapp.generation.models import GenerationJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project):
    return make_world(project, prompts=3)


def test_start_job_from_the_form(client_for, project, researcher, world):
    response = client_for(researcher).post(f"/p/{project.slug}/generation/", {
        "model_versions": [world["teacher"].pk, world["student"].pk], "prompt_set": world["prompt_set"].pk, "split": "",
        "prompt_limit": 2, "k": 3, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 16, "seed": 5})
    job = GenerationJob.objects.exclude(pk=world["job"].pk).get()
    assert response.status_code == 302 and response.url.endswith(f"/generation/{job.pk}/")
    assert (job.status, job.k, job.temperature, job.progress_total, job.created_by) == ("queued", 3, 0.7, 4, researcher)
    page = client_for(researcher).get(f"/p/{project.slug}/generation/{job.pk}/").content.decode()
    assert f'data-job-id="{job.pk}"' in page and "Cancel job" in page


def test_invalid_sampling_is_refused(client_for, project, researcher, world):
    response = client_for(researcher).post(f"/p/{project.slug}/generation/", {
        "model_versions": [world["teacher"].pk], "prompt_set": world["prompt_set"].pk, "k": 17, "temperature": -1,
        "top_p": 0, "max_new_tokens": 16, "seed": 0})
    assert response.status_code == 200 and GenerationJob.objects.count() == 1
    assert set(response.context["form"].errors) == {"k", "temperature", "top_p"}


def test_cancel_queued_job(client_for, project, researcher, world):
    job = GenerationJob.objects.create(project=project, prompt_set=world["prompt_set"])
    client_for(researcher).post(f"/p/{project.slug}/generation/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == "cancelled" and job.cancel_requested


@pytest.mark.parametrize("persona,status", [("researcher", 200), ("annotator", 403), ("outsider", 404)])
def test_generation_pages_by_role(request, client_for, project, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(f"/p/{project.slug}/generation/").status_code == status


def test_results_page_lists_every_sample(client_for, project, researcher, world):
    page = client_for(researcher).get(f"/p/{project.slug}/generation/{world['job'].pk}/").content.decode()
    assert page.count('class="generation-text"') == 3 * 2 * 2 and "teacher-7b" in page and "student-1b" in page
