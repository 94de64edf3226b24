"""The generation job on the gpu queue: claim the job, load each model version in turn, answer the
job's prompts in chunks (stored as they finish, so progress is real and a cancel or crash keeps the
finished chunks), publish progress, finish. Re-running a job never duplicates a sample."""
from celery import shared_task

from ml.generation import generate
from ml.modeling import load_model
from webapp.generation import services
from webapp.generation.models import JobStatus

CHUNK = 16  # prompts per stored chunk: small enough for a lively progress bar


@shared_task(name="workers.tasks.gpu.generation.run_generation_job")
def run_generation_job(job_id: int) -> str:
    job = services.generation_job_claim(job_id=job_id)
    if job is None:
        return "not claimed"
    try:
        prompts = list(services.job_prompts(job).values_list("id", "text", "messages"))
        versions, total, done = list(job.model_versions.all()), len(prompts) * job.model_versions.count(), 0
        for version in versions:
            loaded = load_model(version.source, revision=version.revision or None)
            for start in range(0, len(prompts), CHUNK):
                chunk = prompts[start:start + CHUNK]
                outputs = generate(loaded.model, loaded.tokenizer, [messages or text for _, text, messages in chunk], k=job.k,
                                   temperature=job.temperature, top_p=job.top_p, max_new_tokens=job.max_new_tokens,
                                   seed=job.seed + start)
                services.generations_store(job=job, model_version=version, prompt_ids=[p[0] for p in chunk],
                                           outputs=[[_plain(o) for o in samples] for samples in outputs], seed=job.seed + start)
                done += len(chunk)
                if not services.generation_job_progress(job=job, done=done, total=total):
                    services.generation_job_finish(job=job, status=JobStatus.CANCELLED)
                    return "cancelled"
            del loaded
        services.generation_job_finish(job=job)
        return "succeeded"
    except Exception as exc:  # a failed job shows why on its page instead of hanging in "running"
        services.generation_job_finish(job=job, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise


def _plain(output) -> dict:
    return {"text": output.text, "token_count": len(output.token_ids), "token_logps": [round(x, 4) for x in output.token_logps]}

