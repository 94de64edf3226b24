"""Periodic housekeeping on the default queue: the stale-run reaper (scheduled by beat)."""
from celery import shared_task

from webapp.training.services import runs_reap_stale


@shared_task(name="workers.tasks.maintenance.reap_stale_runs")
def reap_stale_runs() -> int:
    return runs_reap_stale()
