"""The Rerun button of generation jobs, judge jobs and evaluations (webapp/job_views.py): shown on
the job's page only when the job failed or was cancelled, POST only, researchers only (an annotator
gets 403, an outsider 404), and it queues the job again; a job in another state is left alone with
a message saying why. The reaper's message points at it."""
import pytest

from tests.webapp.test_lifecycle import sent  # noqa: F401  (fixture: the tasks sent after commit)
from webapp.annotation.models import JudgeJob
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.evaluation.models import Evaluation
from webapp.generation.models import GenerationJob
from webapp.lifecycle import JobStatus

pytestmark = pytest.mark.django_db(transaction=True)  # the task is sent after commit


@pytest.fixture
def jobs(project):
    prompt_set = PromptSet.objects.create(project=project, name="p")
    teacher = ModelVersion.objects.create(project=project, name="t", role="teacher", source="/m/t")
    failed = {"status": JobStatus.FAILED, "error": "No heartbeat from its worker for over 900s."}
    return {
        "generation": (GenerationJob.objects.create(project=project, prompt_set=prompt_set, **failed),
                       "generation/{pk}/", "generation/{pk}/rerun"),
        "judge": (JudgeJob.objects.create(project=project, teacher=teacher, comparison_ids=[1], **failed),
                  "judge/", "judge/{pk}/rerun"),
        "evaluation": (Evaluation.objects.create(project=project, name="e", prompt_set=prompt_set, teacher=teacher, **failed),
                       "evaluations/{pk}/", "evaluations/{pk}/rerun"),
    }


@pytest.mark.parametrize("kind", ["generation", "judge", "evaluation"])
def test_researcher_reruns_a_failed_job_from_its_page(kind, jobs, project, researcher, client_for, sent):
    job, page, rerun = jobs[kind]
    client = client_for(researcher)
    html = client.get(f"/p/{project.slug}/{page.format(pk=job.pk)}").content.decode()
    assert f"/{rerun.format(pk=job.pk)}" in html and ">Rerun</button>" in html

    response = client.post(f"/p/{project.slug}/{rerun.format(pk=job.pk)}", follow=True)
    assert response.status_code == 200 and "queued again" in response.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == "" and len(sent) == 1

    html = client.get(f"/p/{project.slug}/{page.format(pk=job.pk)}").content.decode()
    assert f"/{rerun.format(pk=job.pk)}" not in html  # a queued job has no Rerun button
    response = client.post(f"/p/{project.slug}/{rerun.format(pk=job.pk)}", follow=True)
    assert "only failed or cancelled" in response.content.decode() and len(sent) == 1  # nothing queued twice


@pytest.mark.parametrize("kind", ["generation", "judge", "evaluation"])
def test_rerun_is_post_only_and_for_researchers(kind, jobs, project, annotator, outsider, researcher, client_for, sent):
    job, _, rerun = jobs[kind]
    url = f"/p/{project.slug}/{rerun.format(pk=job.pk)}"
    assert client_for(annotator).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    assert client_for(researcher).get(url).status_code == 405
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and not sent


def test_rerun_of_another_projects_job_is_404(jobs, researcher, client_for, sent, django_user_model):
    from webapp.projects.services import project_create

    other = project_create(name="Other", created_by=researcher)
    job, _, rerun = jobs["generation"]
    assert client_for(researcher).post(f"/p/{other.slug}/{rerun.format(pk=job.pk)}").status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
