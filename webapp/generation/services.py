"""Writes for generation jobs: create (and enqueue on the gpu queue after commit), store generations
idempotently, and the lifecycle steps (claim, progress, finish, cancel, rerun, reap: thin wrappers
over webapp.lifecycle). Every state change is published to the project's generation group."""
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp import lifecycle
from webapp.celery import enqueue
from webapp.generation import events
from webapp.generation.models import Generation, GenerationJob

TASK = "workers.tasks.gpu.generation.run_generation_job"


def generation_job_create(*, project, created_by, model_versions, prompt_set, split: str = "", prompt_limit=None,
                          k: int = 1, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64,
                          seed: int = 0) -> GenerationJob:
    if not model_versions:
        raise ValidationError("Pick at least one model version.")
    if any(mv.project_id != project.pk for mv in model_versions) or prompt_set.project_id != project.pk:
        raise ValidationError("Models and prompts must belong to this project.")
    with transaction.atomic():
        job = GenerationJob.objects.create(project=project, created_by=created_by, prompt_set=prompt_set, split=split,
                                           prompt_limit=prompt_limit, k=k, temperature=temperature, top_p=top_p,
                                           max_new_tokens=max_new_tokens, seed=seed)
        job.model_versions.set(model_versions)
        job.progress_total = job_prompts(job).count() * len(model_versions)
        job.save(update_fields=["progress_total"])
        events.job_progress(job)
        enqueue(TASK, job.pk)
    return job


def job_prompts(job):
    """The prompts a job answers: its set, filtered by split, capped by prompt_limit (stable order)."""
    prompts = job.prompt_set.prompts.order_by("id")
    if job.split:
        prompts = prompts.filter(split=job.split)
    if job.prompt_limit:
        prompts = prompts.filter(id__in=list(prompts.values_list("id", flat=True)[: job.prompt_limit]))
    return prompts


JOBS = lifecycle.JobKind(GenerationJob, task=TASK, publish=events.job_progress)
generation_job_progress = JOBS.progress  # (job=, attempt=, done=, total=) → lifecycle.GO / CANCEL / LOST
generation_job_finish = JOBS.finish  # (job=, attempt=, status=, error=) → False when the job is no longer ours
generation_jobs_reap_stale = JOBS.reap


def generation_job_claim(*, job_id: int, worker: str = "") -> tuple[GenerationJob, int] | None:
    """queued → running (webapp.lifecycle): the job and this claim's attempt, or None."""
    attempt = JOBS.claim(job_id, worker=worker)
    return None if attempt is None else (GenerationJob.objects.get(pk=job_id), attempt)


def generations_store(*, job: GenerationJob, model_version, prompt_ids: list, outputs: list, seed: int) -> int:
    """outputs[i] holds the k samples (text, token_count, token_logps) for prompt_ids[i]. A re-run
    of the same job never duplicates a sample (unique constraint, conflicts ignored)."""
    rows = [Generation(job=job, prompt_id=prompt_id, model_version=model_version, sample_index=index, text=sample["text"],
                       token_count=sample["token_count"], token_logps=sample.get("token_logps"), seed=seed,
                       temperature=job.temperature, top_p=job.top_p, origin="job")
            for prompt_id, samples in zip(prompt_ids, outputs, strict=True) for index, sample in enumerate(samples)]
    return len(Generation.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500))


def generation_job_usage_store(*, job: GenerationJob, usage: dict) -> None:
    """The endpoint versions' token and request counts so far, {version id: counts}; written also when
    an attempt fails, so the retries that preceded the failure are on the page."""
    GenerationJob.objects.filter(pk=job.pk).update(usage=usage)


def generation_job_cancel(*, job: GenerationJob) -> str:
    """Queued jobs stop at once; running ones at the next batch (cooperative)."""
    return JOBS.cancel(job)


def generation_job_rerun(*, job: GenerationJob) -> GenerationJob:
    """failed / cancelled → queued again; the answers already stored are kept (not generated twice)."""
    return JOBS.rerun(job)
