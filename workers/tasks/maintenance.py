"""Periodic housekeeping on the default queue (scheduled by beat): the reaper, which fails every kind
of job whose worker went silent past that kind's grace (webapp.lifecycle), and says so live."""
from celery import shared_task

from webapp import lifecycle
from webapp.annotation.judging import judge_jobs_reap_stale
from webapp.catalog.models import GGUFConversion
from webapp.evaluation.loop_services import loop_rounds_reap_stale
from webapp.evaluation.services import evaluations_reap_stale
from webapp.generation.services import generation_jobs_reap_stale
from webapp.training.services import runs_reap_stale

REAPERS = {"training_runs": runs_reap_stale, "generation_jobs": generation_jobs_reap_stale,
           "judge_jobs": judge_jobs_reap_stale, "evaluations": evaluations_reap_stale,
           "loop_rounds": loop_rounds_reap_stale,
           "gguf_conversions": lambda: len(lifecycle.jobs_reap_stale(GGUFConversion))}


@shared_task(name="workers.tasks.maintenance.reap_stale_runs")
def reap_stale_runs() -> dict:
    return {name: reap() for name, reap in REAPERS.items()}
