"""Every job list pages instead of cutting off (generation jobs were capped at 50, judge jobs at 30,
training runs at 200): page 1 shows the newest, the pager reaches the oldest, and nothing is lost."""
import re

import pytest

from webapp.annotation.models import JudgeJob
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.generation.models import GenerationJob
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _ids(html: str, pattern: str) -> set:
    return set(map(int, re.findall(pattern, html)))


def _all_pages(client, url, pattern):
    seen, page = set(), 1
    while True:
        html = client.get(f"{url}?page={page}").content.decode()
        seen |= _ids(html, pattern)
        if 'rel="next"' not in html:
            return seen, page
        page += 1


@pytest.fixture
def student(project):
    return ModelVersion.objects.create(project=project, name="student", role="student", source="org/student")


def test_generation_jobs_page_past_fifty(client_for, project, researcher):
    prompt_set = PromptSet.objects.create(project=project, name="p")
    jobs = GenerationJob.objects.bulk_create([GenerationJob(project=project, prompt_set=prompt_set) for _ in range(60)])
    seen, pages = _all_pages(client_for(researcher), f"/p/{project.slug}/generation/", rf"/p/{project.slug}/generation/(\d+)/")
    assert seen == {j.pk for j in jobs} and pages == 3


def test_judge_jobs_page_past_thirty(client_for, project, researcher, student):
    jobs = JudgeJob.objects.bulk_create([JudgeJob(project=project, teacher=student) for _ in range(40)])
    client = client_for(researcher)
    first = client.get(f"/p/{project.slug}/judge/").content.decode()
    assert "page 1 of 2 · 40 in all" in first
    seen, pages = _all_pages(client, f"/p/{project.slug}/judge/", r'data-judge-job="(\d+)"')
    assert seen == {j.pk for j in jobs} and pages == 2


def test_training_runs_page_past_two_hundred(client_for, project, researcher, student):
    runs = TrainingRun.objects.bulk_create([TrainingRun(project=project, name=f"r{i}", method="dpo", student=student)
                                            for i in range(230)])
    seen, pages = _all_pages(client_for(researcher), f"/p/{project.slug}/training/", r'data-run-id="(\d+)"')
    assert seen == {r.pk for r in runs} and pages == 5
