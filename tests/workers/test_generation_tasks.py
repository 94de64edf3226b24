"""The generation task with tiny real models: in-process (answers stored, k samples each, progress
to the total, a re-run changes nothing, a cancel stops it), and end to end through the real gpu
worker with live progress over the WebSocket to the browser's socket."""
import asyncio
import json
import time

import pytest
import torch

from webapp.catalog.importers import parse_path, prompts_import
from webapp.catalog.services import model_version_register
from webapp.generation import services
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.models import Role
from webapp.projects.services import member_set_role, project_create
from workers.tasks.gpu.generation import run_generation_job

torch.set_num_threads(1)


@pytest.fixture
def demo(django_user_model, tiny_demo_dir, embedded_services):
    owner = django_user_model.objects.create_user(username="rhea-researcher", password="pw-0123456789")
    project = project_create(name="Tiny demo", created_by=owner)
    teacher = model_version_register(project=project, name="teacher", role="teacher", source=str(tiny_demo_dir / "teacher"))
    student = model_version_register(project=project, name="student", role="student", source=str(tiny_demo_dir / "student"))
    prompt_set, created, _ = prompts_import(project=project, prompt_set_name="tasks",
                                            rows=parse_path(tiny_demo_dir / "prompts" / "eval.jsonl").rows)
    return {"project": project, "owner": owner, "teacher": teacher, "student": student, "prompt_set": prompt_set}


@pytest.mark.django_db
def test_task_generates_k_samples_per_model_and_is_idempotent(demo):
    job = services.generation_job_create(project=demo["project"], created_by=demo["owner"], model_versions=[demo["teacher"], demo["student"]],
                                         prompt_set=demo["prompt_set"], prompt_limit=5, k=2, temperature=1.0, max_new_tokens=8, seed=3)
    assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == ("succeeded", 10, 10)
    generations = Generation.objects.filter(job=job)
    assert generations.count() == 5 * 2 * 2
    assert all(g.token_count == len(g.token_logps) and g.token_count >= 1 for g in generations)
    assert set(generations.values_list("sample_index", flat=True)) == {0, 1}
    assert run_generation_job(job.pk) == "not claimed" and generations.count() == 20


@pytest.mark.django_db
def test_cancel_between_chunks(demo, monkeypatch):
    from workers.tasks.gpu import generation as task_module

    monkeypatch.setattr(task_module, "CHUNK", 2)
    job = services.generation_job_create(project=demo["project"], created_by=demo["owner"], model_versions=[demo["student"]],
                                         prompt_set=demo["prompt_set"], prompt_limit=6, k=1, max_new_tokens=4)
    original = services.generation_job_progress

    def progress_then_cancel(*, job, attempt, done, total):
        GenerationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        return original(job=job, attempt=attempt, done=done, total=total)

    monkeypatch.setattr(services, "generation_job_progress", progress_then_cancel)
    assert run_generation_job(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.status == "cancelled" and Generation.objects.filter(job=job).count() == 2  # the finished chunk is kept


@pytest.mark.slow
def test_job_from_the_page_runs_on_the_gpu_worker_with_live_progress(transactional_db, demo, celery_workers, asgi_server):
    from tests.webapp.annotation.conftest import http_login

    member_set_role(project=demo["project"], user=demo["owner"], role=Role.RESEARCHER)
    http = http_login(asgi_server, demo["owner"])
    slug = demo["project"].slug

    async def scenario():
        import websockets

        url = asgi_server.replace("http://", "ws://") + f"/ws/p/{slug}/generation/"
        async with websockets.connect(url, additional_headers={"Cookie": f"sessionid={http.cookies['sessionid']}",
                                                                "Origin": asgi_server}) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "generation.snapshot"
            response = await asyncio.to_thread(http.post, f"/p/{slug}/generation/", data={
                "model_versions": [demo["teacher"].pk, demo["student"].pk], "prompt_set": demo["prompt_set"].pk,
                "prompt_limit": 20, "k": 1, "temperature": 0, "top_p": 1, "max_new_tokens": 6, "seed": 0})
            assert response.status_code == 302, response.text[:300]
            seen, deadline = [], time.monotonic() + 240
            while time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 240))
                seen.append((message["status"], message["done"]))
                if message["status"] in ("succeeded", "failed"):
                    return seen
            raise AssertionError(f"no end of job in time: {seen}")

    seen = asyncio.run(scenario())
    assert seen[-1] == ("succeeded", 40), seen
    done_while_running = [done for status, done in seen if status == "running"]
    assert len(done_while_running) >= 3 and done_while_running == sorted(done_while_running)  # a bar that moves
    assert Generation.objects.filter(job__project=demo["project"]).count() == 40


@pytest.mark.django_db(transaction=True)
def test_rerun_after_a_cancel_keeps_the_stored_chunks_and_generates_only_the_rest(demo, monkeypatch):
    from workers.tasks.gpu import generation as task_module

    monkeypatch.setattr(task_module, "CHUNK", 2)
    monkeypatch.setattr("webapp.celery.app.send_task", lambda *args, **kwargs: None)  # this test runs the task itself
    job = services.generation_job_create(project=demo["project"], created_by=demo["owner"], model_versions=[demo["student"]],
                                         prompt_set=demo["prompt_set"], prompt_limit=6, k=1, max_new_tokens=4)
    original = services.generation_job_progress

    def cancel_after_first_chunk(*, job, attempt, done, total):
        GenerationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        return original(job=job, attempt=attempt, done=done, total=total)

    monkeypatch.setattr(services, "generation_job_progress", cancel_after_first_chunk)
    assert run_generation_job(job.pk) == "cancelled"
    kept = dict(Generation.objects.filter(job=job).values_list("id", "text"))
    assert len(kept) == 2

    monkeypatch.setattr(services, "generation_job_progress", original)
    services.generation_job_rerun(job=GenerationJob.objects.get(pk=job.pk))
    generated = []
    real_generate = task_module.generator_for

    def counting_generator(*args, **kwargs):
        generator = real_generate(*args, **kwargs)
        inner = generator.generate

        def generate(prompts, **options):
            generated.extend(prompts)
            return inner(prompts, **options)

        generator.generate = generate
        return generator

    monkeypatch.setattr(task_module, "generator_for", counting_generator)
    assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempt, job.progress_done) == ("succeeded", 2, 6)
    assert len(generated) == 4  # only the 4 prompts the first attempt had not answered
    rows = dict(Generation.objects.filter(job=job).values_list("id", "text"))
    assert len(rows) == 6 and all(rows[i] == text for i, text in kept.items())
