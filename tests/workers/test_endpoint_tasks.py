"""The gpu tasks with an endpoint teacher (issue 17), against a small fake OpenAI-compatible server
(tests/workers/fake_endpoint.py) and tiny real students: generation stores answers as they arrive
and records token usage; an endpoint that dies mid-job fails the job with the reason after the
client's retries, and a rerun asks only for the missing prompts; judge jobs verdict through the
endpoint in both orders and count unreadable answers instead of calling them ties; a training
method the endpoint cannot serve fails with the reason; DCKD takes the endpoint's signals with no
π_dpo stage. The load ledger shows no teacher weights were loaded."""
import json

import pytest
import torch
from django.utils import timezone

from tests.workers.fake_endpoint import FakeEndpoint
from webapp.annotation import judging
from webapp.annotation.models import Comparison, Judgement
from webapp.annotation.services import comparisons_build
from webapp.catalog.endpoints import endpoint_probe_store, endpoint_register
from webapp.catalog.importers import parse_path, prompts_import
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.catalog.services import model_version_register
from webapp.evaluation.models import Evaluation
from webapp.generation import services
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.services import project_create
from workers.tasks.gpu.generation import run_generation_job
from workers.tasks.gpu.judging import run_judge_job

torch.set_num_threads(1)
pytestmark = pytest.mark.django_db
WHITE_BOX = {"kind": "white-box", "chat": True, "logprobs": True, "top_logprobs_max": 20, "prompt_logprobs": False}


def _judge_reply(messages) -> str:
    """A judge that prefers the response marked RIGHT and gives no readable answer on a pair marked
    UNSURE; any other question is answered "42"."""
    text = messages[-1]["content"]
    if "UNSURE" in text:
        return "I cannot decide"
    if "RIGHT" not in text:
        return "42"  # not a judge question: an answer to a prompt
    return "A" if text.index("RIGHT") < text.index("WRONG") else "B"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr("ml.endpoints.client.backoff_delay", lambda *args, **kwargs: 0.0)  # retries without waiting
    with FakeEndpoint(reply=_judge_reply) as server:
        yield server


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "loads.jsonl"
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(path))
    return lambda: [json.loads(line)["source"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def researcher_of(world):
    return world["owner"]


@pytest.fixture
def world(django_user_model, tiny_demo_dir, embedded_services, fake, settings):
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    owner = django_user_model.objects.create_user(username="rhea-researcher", password="pw-0123456789")
    project = project_create(name="Endpoint demo", created_by=owner)
    teacher = endpoint_register(project=project, name="api-teacher", role="teacher", endpoint_url=fake.base_url,
                                served_model=fake.model, concurrency=1)
    endpoint_probe_store(model_version_id=teacher.pk, capability=WHITE_BOX)
    teacher.refresh_from_db()
    student = model_version_register(project=project, name="student", role="student", source=str(tiny_demo_dir / "student"))
    prompt_set, _, _ = prompts_import(project=project, prompt_set_name="tasks",
                                      rows=parse_path(tiny_demo_dir / "prompts" / "eval.jsonl").rows)
    return {"project": project, "owner": owner, "teacher": teacher, "student": student, "prompt_set": prompt_set}


def test_endpoint_generation_stores_answers_and_usage_without_loading_the_teacher(world, fake, ledger):
    job = services.generation_job_create(project=world["project"], created_by=world["owner"], model_versions=[world["teacher"]],
                                         prompt_set=world["prompt_set"], prompt_limit=3, k=2, temperature=0.7, max_new_tokens=8)
    assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == ("succeeded", 3, 3)
    assert Generation.objects.filter(job=job).count() == 6 and set(Generation.objects.values_list("text", flat=True)) == {"42"}
    assert all(g.token_count == 1 for g in Generation.objects.filter(job=job))
    usage = job.usage[str(world["teacher"].pk)]
    assert usage["requests"] == 3 and usage["completion_tokens"] == 6 and usage["prompt_tokens"] > 0
    assert [request["n"] for request in fake.chat_requests] == [2, 2, 2]
    assert ledger() == []  # nothing loaded at all: the endpoint answered


def test_an_endpoint_that_dies_mid_job_fails_it_and_a_rerun_finishes_only_the_missing_prompts(world, fake, monkeypatch):
    monkeypatch.setattr("webapp.celery.app.send_task", lambda *args, **kwargs: None)  # this test runs the task itself
    job = services.generation_job_create(project=world["project"], created_by=world["owner"], model_versions=[world["teacher"]],
                                         prompt_set=world["prompt_set"], prompt_limit=5, k=1, max_new_tokens=8)
    fake.die_after = 2  # two prompts answered, then 503s
    assert run_generation_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "EndpointUnavailable" in job.error and "503" in job.error, job.error
    assert fake.requests == 2 + 5  # the third prompt: one try and four retries (spec.max_retries)
    kept = set(Generation.objects.filter(job=job).values_list("prompt_id", flat=True))
    assert len(kept) == 2

    fake.die_after, fake.requests, fake.chat_requests = None, 0, []
    services.generation_job_rerun(job=job)
    assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempt, job.progress_done) == ("succeeded", 2, 5)
    assert len(fake.chat_requests) == 3  # only the prompts the first attempt had not stored
    assert Generation.objects.filter(job=job).count() == 5  # none duplicated
    assert job.usage[str(world["teacher"].pk)]["requests"] == 2 + 5 + 3  # summed over both attempts


def test_judge_job_on_an_endpoint_counts_unreadable_answers_and_never_ties_them(world, ledger):
    w = world
    prompt_set = PromptSet.objects.create(project=w["project"], name="judged")
    source = GenerationJob.objects.create(project=w["project"], prompt_set=prompt_set, k=1, status="succeeded")
    for i, (teacher_text, student_text) in enumerate([("RIGHT 5", "WRONG 6"), ("WRONG cat", "RIGHT dog"),
                                                      ("UNSURE 2", "UNSURE 3")]):
        prompt = Prompt.objects.create(prompt_set=prompt_set, text=f"question {i}", content_hash=f"q{i}")
        Generation.objects.create(job=source, prompt=prompt, model_version=w["teacher"], text=teacher_text)
        Generation.objects.create(job=source, prompt=prompt, model_version=w["student"], text=student_text)
    comparisons_build(project=w["project"], generations=Generation.objects.filter(job=source), mode="teacher_student")
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.all())
    assert run_judge_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.unparseable) == ("succeeded", 3, 1)
    verdicts = {j.comparison.prompt.text: j for j in Judgement.objects.filter(source="teacher").select_related("comparison__prompt")}
    assert set(verdicts) == {"question 0", "question 1"}  # the unreadable pair has no verdict, not a tie
    for text, judgement in verdicts.items():
        first = judgement.comparison.items.order_by("position").first().generation.text
        assert judgement.verdict == ("a" if first.startswith("RIGHT") else "b")
        assert judgement.shown_order[0] == judgement.shown_order[1][::-1]  # both orders were asked
        assert judgement.details["identity"].startswith("generative(endpoint=")
    assert judging.progress_message(job)["unparseable"] == 1
    assert ledger() == []


def test_a_likelihood_judge_on_an_endpoint_fails_with_the_reason(world):
    comparison_source = PromptSet.objects.create(project=world["project"], name="one")
    source = GenerationJob.objects.create(project=world["project"], prompt_set=comparison_source, k=1, status="succeeded")
    prompt = Prompt.objects.create(prompt_set=comparison_source, text="q", content_hash="q")
    for version, text in ((world["teacher"], "RIGHT"), (world["student"], "WRONG")):
        Generation.objects.create(job=source, prompt=prompt, model_version=version, text=text)
    comparisons_build(project=world["project"], generations=Generation.objects.filter(job=source), mode="teacher_student")
    job = judging.judge_job_create(project=world["project"], created_by=world["owner"], teacher=world["teacher"],
                                   method="likelihood", comparisons=Comparison.objects.all())
    assert run_judge_job(job.pk) == "failed"
    job.refresh_from_db()
    assert "endpoint" in job.error and "generatively only" in job.error


def test_a_loop_round_takes_the_teacher_answers_from_the_endpoint(world, researcher_of, ledger):
    from webapp.evaluation import loop_services
    from workers.tasks.gpu.loop import run_round

    loop_round = loop_services.loop_round_start(project=world["project"], student=world["student"], teacher=world["teacher"],
                                                prompt_set=world["prompt_set"], prompt_count=3, created_by=researcher_of)
    assert run_round(loop_round.id) == "succeeded"
    loop_round.refresh_from_db()
    assert Generation.objects.filter(model_version=world["teacher"], origin="loop").count() == 3
    assert loop_round.stats["prompts"] == 3 and loop_round.stats["teacher_signals"].startswith("endpoint")
    assert ledger() == [world["student"].source]  # only the student's weights


def test_an_evaluation_against_an_endpoint_teacher(world, fake, researcher_of, ledger):
    from webapp.evaluation import services as evaluation_services
    from workers.tasks.gpu.evaluation import run_evaluation

    fake.reply = lambda messages: "A" if "Which response" in messages[-1]["content"] else "42"
    evaluation = evaluation_services.evaluation_create(
        project=world["project"], name="vs endpoint", teacher=world["teacher"], model_versions=[world["student"]],
        prompt_set=world["prompt_set"], judges=["teacher", "oracle"], created_by=researcher_of,
        config={"split": "", "prompt_limit": 3, "teacher_judge": "generative", "max_new_tokens": 4})
    assert run_evaluation(evaluation.id) == "succeeded", Evaluation.objects.get(pk=evaluation.id).error
    evaluation.refresh_from_db()
    assert evaluation.results["teacher_judge"].startswith("generative(endpoint=fake-teacher@")
    teacher_verdicts = Judgement.objects.filter(comparison__evaluation=evaluation, source="teacher")
    assert teacher_verdicts.count() == 3
    assert all(j.verdict == "tie" for j in teacher_verdicts)  # "A" in both orders: a pure position bias
    assert evaluation.results["models"][str(world["student"].pk)]["kl_to_teacher"] is None
    assert ledger() == [world["student"].source]
