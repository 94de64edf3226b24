"""Periodic housekeeping on the default queue (scheduled by beat): the stale-run reaper for training
runs, and the same for generation, judge and evaluation jobs whose worker went silent."""
from celery import shared_task
from django.conf import settings

from webapp.annotation.models import JudgeJob
from webapp.evaluation.models import Evaluation
from webapp.generation.models import GenerationJob
from webapp.status import jobs_reap_stale
from webapp.training.services import runs_reap_stale


@shared_task(name="workers.tasks.maintenance.reap_stale_runs")
def reap_stale_runs() -> dict:
    reaped = {"training_runs": runs_reap_stale()}
    for name, model in (("generation_jobs", GenerationJob), ("judge_jobs", JudgeJob), ("evaluations", Evaluation)):
        reaped[name] = jobs_reap_stale(model, stale_after_seconds=settings.JOB_STALE_AFTER_SECONDS)
    return reaped
