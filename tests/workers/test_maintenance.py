"""The beat-scheduled reaper fails silent jobs of every kind, and leaves live ones alone."""
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.catalog.models import ModelVersion, PromptSet
from webapp.evaluation.models import Evaluation
from webapp.generation.models import GenerationJob
from webapp.projects.services import project_create
from workers.tasks.maintenance import reap_stale_runs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _services(embedded_services):
    """Runs against the real PostgreSQL."""


def test_reaper_fails_silent_generation_jobs_and_evaluations_only(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    project = project_create(name="Reaper")
    prompt_set = PromptSet.objects.create(project=project, name="p")
    teacher = ModelVersion.objects.create(project=project, name="t", role="teacher", source="/m/t")
    long_ago, just_now = timezone.now() - timedelta(seconds=120), timezone.now() - timedelta(seconds=5)
    silent = GenerationJob.objects.create(project=project, prompt_set=prompt_set, status="running", heartbeat_at=long_ago)
    alive = GenerationJob.objects.create(project=project, prompt_set=prompt_set, status="running", heartbeat_at=just_now)
    queued = GenerationJob.objects.create(project=project, prompt_set=prompt_set, status="queued")
    evaluation = Evaluation.objects.create(project=project, name="e", prompt_set=prompt_set, teacher=teacher,
                                           status="running", heartbeat_at=long_ago)

    reaped = reap_stale_runs()

    assert reaped["generation_jobs"] == 1 and reaped["evaluations"] == 1 and reaped["training_runs"] == 0
    for job, status in ((silent, "failed"), (alive, "running"), (queued, "queued")):
        job.refresh_from_db()
        assert job.status == status
    evaluation.refresh_from_db()
    assert evaluation.status == "failed" and "No heartbeat" in evaluation.error and "Rerun" in evaluation.error
