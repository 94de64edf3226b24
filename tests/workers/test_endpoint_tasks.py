"""The gpu tasks with an endpoint teacher (issue 17), against the REAL vLLM test server (fixture
`vllm_server`, the demo teacher; its probe record taken by ml.endpoints.probe) and the demo
student: generation stores answers as they arrive and records token usage; an endpoint that dies
mid-job (tests/ml/endpoints/fault_proxy.py in front of the server answering 503) fails the job with
the reason after the client's retries, and a rerun asks only for the missing prompts; a white-box
judge job stores a verdict per comparison from the answer tokens' exact log-probs with the job's
rubric (template, labels, answer-mass mark counted), a black-box one counts the answers it cannot
read instead of calling them ties; a likelihood judge on an endpoint fails with the reason; a loop
round and an evaluation take the teacher's side from the server. The load ledger shows no teacher
weights were loaded."""
import json

import pytest
import torch

from tests.ml.endpoints.fault_proxy import FaultProxy
from webapp.annotation import judging
from webapp.annotation.models import Comparison, Judgement
from webapp.annotation.services import comparisons_build
from webapp.catalog.endpoints import endpoint_probe_store, endpoint_register
from webapp.catalog.importers import parse_path, prompts_import
from webapp.catalog.models import Prompt, PromptSet
from webapp.catalog.services import model_version_register
from webapp.evaluation.models import Evaluation
from webapp.generation import services
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.services import project_create
from workers.tasks.gpu.generation import run_generation_job
from workers.tasks.gpu.judging import run_judge_job

torch.set_num_threads(1)
pytestmark = [pytest.mark.django_db, pytest.mark.vllm, pytest.mark.slow]
BLACK_BOX = {"kind": "black-box", "chat": True, "logprobs": False, "top_logprobs_max": 0, "prompt_logprobs": 0}


@pytest.fixture(scope="module")
def capability(vllm_server):
    from ml.endpoints.client import EndpointClient
    from ml.endpoints.probe import probe
    from ml.endpoints.spec import EndpointSpec

    spec = EndpointSpec(vllm_server.base_url, vllm_server.model, vllm_server.env_name)
    with EndpointClient(spec, env={vllm_server.env_name: vllm_server.api_key}) as client:
        return probe(client)


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr("ml.endpoints.client.backoff_delay", lambda *args, **kwargs: 0.0)  # retries without waiting


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "loads.jsonl"
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(path))
    return lambda: [json.loads(line)["source"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def researcher_of(world):
    return world["owner"]


def _endpoint(project, vllm_server, capability, *, url=None, name="api-teacher"):
    teacher = endpoint_register(project=project, name=name, role="teacher", endpoint_url=url or vllm_server.base_url,
                                served_model=vllm_server.model, api_key_env=vllm_server.env_name, concurrency=1)
    endpoint_probe_store(model_version_id=teacher.pk, capability=capability)
    teacher.refresh_from_db()
    return teacher


@pytest.fixture
def world(vllm_server, capability, django_user_model, demo_world_dir, embedded_services, no_backoff, settings):
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    owner = django_user_model.objects.create_user(username="rhea-researcher", password="pw-0123456789")
    project = project_create(name="Endpoint demo", created_by=owner)
    teacher = _endpoint(project, vllm_server, capability)
    student = model_version_register(project=project, name="student", role="student", source=str(demo_world_dir / "student"))
    prompt_set, _, _ = prompts_import(project=project, prompt_set_name="tasks",
                                      rows=parse_path(demo_world_dir / "prompts" / "eval.jsonl").rows)
    return {"project": project, "owner": owner, "teacher": teacher, "student": student, "prompt_set": prompt_set}


def test_endpoint_generation_stores_answers_and_usage_without_loading_the_teacher(world, ledger):
    job = services.generation_job_create(project=world["project"], created_by=world["owner"], model_versions=[world["teacher"]],
                                         prompt_set=world["prompt_set"], prompt_limit=3, k=2, temperature=0.7, max_new_tokens=8)
    assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == ("succeeded", 3, 3)
    generations = Generation.objects.filter(job=job)
    assert generations.count() == 6 and all(g.text and g.token_count >= 1 for g in generations)
    usage = job.usage[str(world["teacher"].pk)]
    assert usage["requests"] == 3 and usage["completion_tokens"] >= 6 and usage["prompt_tokens"] > 0  # k=2 as n=2
    assert ledger() == []  # nothing loaded at all: the endpoint answered


def test_an_endpoint_that_dies_mid_job_fails_it_and_a_rerun_finishes_only_the_missing_prompts(
        world, vllm_server, capability, monkeypatch):
    monkeypatch.setattr("webapp.celery.app.send_task", lambda *args, **kwargs: None)  # this test runs the task itself
    answered, dead = [0], [True]

    def rule(path, body):  # two prompts answered by the server, then 503s while `dead`
        if not path.endswith("/chat/completions"):
            return None
        if dead[0] and answered[0] >= 2:
            return ("status", 503, None)
        answered[0] += 1
        return None
    with FaultProxy(vllm_server.root_url, rule) as proxy:
        teacher = _endpoint(world["project"], vllm_server, capability, url=proxy.base_url, name="flaky-teacher")
        job = services.generation_job_create(project=world["project"], created_by=world["owner"], model_versions=[teacher],
                                             prompt_set=world["prompt_set"], prompt_limit=5, k=1, max_new_tokens=8)
        assert run_generation_job(job.pk) == "failed"
        job.refresh_from_db()
        assert job.status == "failed" and "EndpointUnavailable" in job.error and "503" in job.error, job.error
        assert proxy.happened("/chat/completions") == ["forwarded"] * 2 + ["status"] * 5  # one try, four retries
        assert Generation.objects.filter(job=job).count() == 2

        dead[0] = False
        services.generation_job_rerun(job=job)
        assert run_generation_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempt, job.progress_done) == ("succeeded", 2, 5)
    assert proxy.happened("/chat/completions")[7:] == ["forwarded"] * 3  # only the prompts not stored before
    assert Generation.objects.filter(job=job).count() == 5  # none duplicated
    assert job.usage[str(teacher.pk)]["requests"] == 2 + 5 + 3  # summed over both attempts


def _judged_comparisons(w) -> None:
    prompt_set = PromptSet.objects.create(project=w["project"], name="judged")
    source = GenerationJob.objects.create(project=w["project"], prompt_set=prompt_set, k=1, status="succeeded")
    for i, (question, right, wrong) in enumerate([("What is 2 plus 3?", "5", "6"), ("Reverse: cat dog", "dog cat", "cat"),
                                                  ("Sort: pear apple", "apple pear", "pear apple")]):
        prompt = Prompt.objects.create(prompt_set=prompt_set, text=question, content_hash=f"q{i}")
        Generation.objects.create(job=source, prompt=prompt, model_version=w["teacher"], text=right)
        Generation.objects.create(job=source, prompt=prompt, model_version=w["student"], text=wrong)
    comparisons_build(project=w["project"], generations=Generation.objects.filter(job=source), mode="teacher_student")


def test_judge_jobs_on_an_endpoint_white_box_exact_with_the_rubric_black_box_never_tied(world, vllm_server, ledger):
    """White-box: one verdict per comparison with the job's template and labels (words the demo teacher
    does start answers with), its low-mass verdicts counted. The same endpoint taken as black-box
    (text answers only): the demo teacher names neither A nor B, so no verdict is stored and each
    comparison is counted unparseable, never a tie."""
    w = world
    _judged_comparisons(w)
    template = "{prompt}\nFirst: {first}\nSecond: {second}\nSay {first_label} or {second_label}."
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.all(), template=template, labels=("apple", "bird"))
    assert run_judge_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.unparseable) == ("succeeded", 3, 0)
    verdicts = Judgement.objects.filter(source="teacher", judge_name=job.judge_name)
    assert verdicts.count() == 3 and job.judge_name.startswith("teacher:generative:api-teacher|answers=apple/bird")
    pairs = [v.details["pairs"][0] for v in verdicts]
    assert all(v.details["identity"] == f"generative(endpoint=demo-teacher@{vllm_server.base_url}, answers=apple/bird)"
               for v in verdicts)
    assert all(p["p_source_ab"] == p["p_source_ba"] == "prompt_logprobs" and p["answer_mass_ab"] > 0 for p in pairs)
    assert job.low_answer_mass == sum(bool(p.get("low_answer_mass")) for p in pairs)
    assert judging.progress_message(job)["low_answer_mass"] == job.low_answer_mass

    endpoint_probe_store(model_version_id=w["teacher"].pk, capability=BLACK_BOX)
    w["teacher"].refresh_from_db()
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.all())
    assert run_judge_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.unparseable) == ("succeeded", 3, 3)
    assert not Judgement.objects.filter(judge_name=job.judge_name).exists()  # unreadable: no verdict, not a tie
    assert judging.progress_message(job)["unparseable"] == 3
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


def test_an_evaluation_against_an_endpoint_teacher(world, researcher_of, ledger):
    from webapp.evaluation import services as evaluation_services
    from workers.tasks.gpu.evaluation import run_evaluation

    evaluation = evaluation_services.evaluation_create(
        project=world["project"], name="vs endpoint", teacher=world["teacher"], model_versions=[world["student"]],
        prompt_set=world["prompt_set"], judges=["teacher", "oracle"], created_by=researcher_of,
        config={"split": "", "prompt_limit": 3, "teacher_judge": "generative", "max_new_tokens": 4})
    assert run_evaluation(evaluation.id) == "succeeded", Evaluation.objects.get(pk=evaluation.id).error
    evaluation.refresh_from_db()
    assert evaluation.results["teacher_judge"].startswith("generative(endpoint=demo-teacher@")
    teacher_verdicts = Judgement.objects.filter(comparison__evaluation=evaluation, source="teacher")
    assert teacher_verdicts.count() == 3 and all(j.probability is not None for j in teacher_verdicts)  # exact: none unread
    assert evaluation.results["models"][str(world["student"].pk)]["kl_to_teacher"] is None
    assert ledger() == [world["student"].source]
