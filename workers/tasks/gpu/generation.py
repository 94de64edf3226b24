"""The generation job on the gpu queue: claim the job, load each model version in turn, answer the
job's prompts in chunks (stored as they finish, so progress is real and a cancel or crash keeps the
finished chunks), publish progress, finish. A rerun skips the chunks an earlier attempt stored, and
never duplicates a sample. The lifecycle (claim, heartbeat, cancel, finish) is webapp.lifecycle's.
An endpoint model version (workers.endpoints) answers through its server, a few prompts at a time
(its concurrency), each chunk stored as it arrives, so an endpoint that dies mid-job (the client's
retries exhausted) fails the job with the reason and a rerun asks only for the missing prompts; its
token usage is recorded on the job, summed over attempts."""
from celery import shared_task
from django.conf import settings

from ml.backends import generator_for
from webapp.generation import selectors, services
from webapp.lifecycle import stop_unless_go
from workers import endpoints

CHUNK = 16  # prompts per stored chunk: small enough for a lively progress bar


@shared_task(name="workers.tasks.gpu.generation.run_generation_job")
def run_generation_job(job_id: int) -> str:
    return services.JOBS.run(job_id, _generate)


def _generate(job, attempt: int) -> None:
    prompts = list(services.job_prompts(job).values_list("id", "text", "messages"))
    versions, total, done = list(job.model_versions.order_by("id")), len(prompts) * job.model_versions.count(), 0
    usage = dict(job.usage or {})
    for version in versions:
        stored = selectors.job_prompts_answered(job=job, model_version=version)
        size = endpoints.concurrency(version) if endpoints.is_endpoint(version) else CHUNK
        loaded, earlier = None, usage.get(str(version.id))
        try:
            for start in range(0, len(prompts), size):
                chunk = [p for p in prompts[start:start + size] if p[0] not in stored]
                if chunk:
                    loaded = loaded or _generator(version)
                    _answer(job, version, loaded, chunk, seed=job.seed + start)
                done += len(prompts[start:start + size])
                if loaded is not None and endpoints.is_endpoint(version):  # live on the page with the progress
                    usage[str(version.id)] = endpoints.usage_add(earlier, endpoints.usage_of(loaded))
                    services.generation_job_usage_store(job=job, usage=usage)
                stop_unless_go(services.generation_job_progress(job=job, attempt=attempt, done=done, total=total))
        finally:
            if loaded is not None and endpoints.is_endpoint(version):  # also when it failed: its retries count
                usage[str(version.id)] = endpoints.usage_add(earlier, endpoints.usage_of(loaded))
                services.generation_job_usage_store(job=job, usage=usage)
            if loaded is not None:
                loaded.close()  # a vLLM engine's GPU memory back before the next model (or a cancelled job's end)


def _answer(job, version, generator, chunk: list, *, seed: int) -> None:
    """Answers one chunk and stores it. An endpoint hands each prompt's samples over as they arrive
    (in this thread), and each is stored at once, so when the endpoint fails mid-chunk (retries
    exhausted) the answers that did arrive are kept."""
    inputs = [messages or text for _, text, messages in chunk]
    options = {"k": job.k, "temperature": job.temperature, "top_p": job.top_p, "max_new_tokens": job.max_new_tokens,
               "seed": seed}

    def store(indices: list, outputs: list) -> None:
        services.generations_store(job=job, model_version=version, prompt_ids=[chunk[i][0] for i in indices],
                                   outputs=[[_plain(o) for o in samples] for samples in outputs], seed=seed)

    if endpoints.is_endpoint(version):
        generator.generate(inputs, **options, on_result=lambda index, samples: store([index], [samples]))
    else:
        store(list(range(len(chunk))), generator.generate(inputs, **options))


def _generator(version):
    """HF, vLLM on GPU hosts (settings.GENERATION_BACKEND), or the version's endpoint."""
    if endpoints.is_endpoint(version):
        return endpoints.generator(version)
    return generator_for(version.source, revision=version.revision or None, backend=settings.GENERATION_BACKEND)


def _plain(output) -> dict:
    logps = [round(x, 4) for x in output.token_logps]
    return {"text": output.text, "token_count": len(output.token_ids) or len(logps), "token_logps": logps}
