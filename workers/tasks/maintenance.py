"""Periodic housekeeping on the default queue (scheduled by beat): the reaper, which fails every kind
of job whose worker went silent past that kind's grace (webapp.lifecycle), and says so live."""
from celery import shared_task

from webapp import lifecycle
from webapp.annotation import judging, snapshot_jobs
from webapp.catalog.models import GGUFConversion, PromptImport
from webapp.evaluation import loop_services
from webapp.evaluation import services as evaluation_services
from webapp.generation import services as generation_services
from webapp.training.services import runs_reap_stale

REAPERS = {"training_runs": runs_reap_stale, "generation_jobs": generation_services.JOBS.reap,
           "judge_jobs": judging.JOBS.reap, "evaluations": evaluation_services.JOBS.reap,
           "loop_rounds": loop_services.JOBS.reap,
           "gguf_conversions": lambda: len(lifecycle.jobs_reap_stale(GGUFConversion)),
           "prompt_imports": lambda: len(lifecycle.jobs_reap_stale(PromptImport)),
           "snapshot_freezes": snapshot_jobs.JOBS.reap}


@shared_task(name="workers.tasks.maintenance.reap_stale_runs")
def reap_stale_runs() -> dict:
    return {name: reap() for name, reap in REAPERS.items()}
