"""Reads for generation pages: a project's jobs, one job's results grouped by prompt, and the
prompts that have generations from given model versions (what comparisons are built from), and an
endpoint's token usage per model version."""
from collections import defaultdict

from django.db.models import Count

from webapp.generation.models import Generation, GenerationJob
from webapp.lifecycle import JobStatus


def jobs_for(*, project):
    return GenerationJob.objects.filter(project=project).select_related("prompt_set").prefetch_related("model_versions")


def active_jobs(*, project):
    return jobs_for(project=project).filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])


def job_results(*, job, prompt_ids: list) -> list[dict]:
    """[{prompt, generations: [Generation, ...]}] for the given prompts of a job, in prompt order."""
    generations = (Generation.objects.filter(job=job, prompt_id__in=prompt_ids)
                   .select_related("model_version", "prompt").order_by("prompt_id", "model_version_id", "sample_index"))
    grouped = defaultdict(list)
    for generation in generations:
        grouped[generation.prompt_id].append(generation)
    return [{"prompt": gens[0].prompt, "generations": gens} for pid in prompt_ids if (gens := grouped.get(pid))]


def job_usage(*, job) -> list[dict]:
    """[{model, prompt_tokens, completion_tokens, requests, retries}] for the job's endpoint versions."""
    names = dict(job.model_versions.values_list("id", "name"))
    return [{"model": names.get(int(version_id), f"model version {version_id}"), **counts}
            for version_id, counts in sorted((job.usage or {}).items(), key=lambda item: int(item[0]))]


def job_prompt_ids(*, job) -> list[int]:
    return list(Generation.objects.filter(job=job).order_by("prompt_id").values_list("prompt_id", flat=True).distinct())


def job_prompts_answered(*, job, model_version) -> set[int]:
    """Prompts for which this job already stored all k samples of `model_version` (a rerun skips them)."""
    rows = (Generation.objects.filter(job=job, model_version=model_version).values("prompt_id")
            .annotate(n=Count("id")).filter(n__gte=job.k).values_list("prompt_id", flat=True))
    return set(rows)


def job_outputs_after(*, job, after: int = 0, limit: int = 50) -> list[dict]:
    """The job's generations stored after generation id `after`, oldest first, at most `limit`, as
    plain data for the live page (texts are inserted as text there, never as HTML)."""
    rows = (Generation.objects.filter(job=job, pk__gt=after).order_by("id")
            .select_related("model_version", "prompt")[:limit])
    return [{"id": g.pk, "prompt_id": g.prompt_id, "model": g.model_version.name, "sample": g.sample_index,
             "tokens": g.token_count, "text": g.text,
             "prompt": g.prompt.text or " / ".join(m["content"] for m in g.prompt.messages or [])} for g in rows]
