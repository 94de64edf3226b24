"""Reads for generation pages: a project's jobs, one job's results grouped by prompt, and the
prompts that have generations from given model versions (what comparisons are built from)."""
from collections import defaultdict

from webapp.generation.models import Generation, GenerationJob, JobStatus


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


def job_prompt_ids(*, job) -> list[int]:
    return list(Generation.objects.filter(job=job).order_by("prompt_id").values_list("prompt_id", flat=True).distinct())
