"""Default-queue catalog work: importing a large prompt file in the background
(webapp/catalog/prompt_imports.py holds the rules; this task only claims and runs it)."""
import os
import socket

from celery import shared_task

from webapp.catalog.models import PromptImport
from webapp.catalog.prompt_imports import JOBS, prompt_import_run
from webapp.lifecycle import job_run


@shared_task(name="workers.tasks.catalog.import_prompts")
def import_prompts(import_id: int) -> str:
    attempt = JOBS.claim(import_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    if attempt is None:
        return "not claimed"
    job = PromptImport.objects.select_related("project").get(pk=import_id)
    return job_run(JOBS, job, attempt, lambda: prompt_import_run(job=job, attempt=attempt))
