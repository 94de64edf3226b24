"""Issue 17 end to end, in Chromium against a real ASGI server and real Celery workers: a researcher
registers the vLLM-served demo teacher as the project's teacher through the catalog page (probed by
the default worker), generates with it, builds teacher-vs-student comparisons and has the endpoint
judge them (white-box: every verdict from the answer tokens' exact log-probs on the server; the demo
teacher is no instruction-tuned judge, so each is marked and counted low-mass), annotates them, freezes a snapshot, trains DCKD
on the endpoint's top-K signals and evaluates the trained student against the endpoint teacher,
every step through the pages. The gpu worker's load ledger
($DISTILLERY_LOAD_LEDGER) proves that the teacher's weights were never loaded there.

The servers and workers here are this test's own (tests/conftest.py helpers), on their own Redis
database, so they carry the vLLM key, the allowed endpoint host and the ledger whatever the
session's shared workers were started with. Small on purpose: 6 prompts, 2 training steps."""
import json
import time

import pytest

from tests.conftest import start_asgi_server, start_celery_worker
from tests.webapp.conftest import browser_login
from tests.webapp.evaluation.factories import import_demo_prompts
from webapp.annotation.models import Judgement, JudgeJob, PreferenceSnapshot
from webapp.catalog.models import ModelVersion
from webapp.catalog.services import model_version_register
from webapp.evaluation.models import Evaluation, EvaluationOutput
from webapp.generation.models import GenerationJob
from webapp.training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1500),
              pytest.mark.django_db(transaction=True)]
PROMPTS = 6


@pytest.fixture
def endpoint_services(vllm_server, service_env, tmp_path):
    """(ASGI base URL, gpu worker's ledger path): web server and gpu + default workers that know the
    vLLM key and may reach 127.0.0.1, on Redis db 11 (no other worker takes their tasks)."""
    env = {**service_env, "REDIS_URL": service_env["REDIS_URL"].rsplit("/", 1)[0] + "/11",
           "DISTILLERY_ENDPOINT_HOSTS": "127.0.0.1", vllm_server.env_name: vllm_server.api_key,
           "DISTILLERY_DATA_DIR": str(tmp_path / "data")}
    ledger = tmp_path / "gpu-loads.jsonl"
    logs = tmp_path / "logs"
    logs.mkdir()
    url, web = start_asgi_server(env, logs / "web.log")
    workers = [start_celery_worker({**env, "DISTILLERY_LOAD_LEDGER": str(ledger)}, "gpu", logs / "gpu.log", "e2e-gpu"),
               start_celery_worker(env, "default", logs / "default.log", "e2e-default")]
    yield url, ledger
    for proc in [web, *workers]:
        proc.terminate()
    for proc in [web, *workers]:
        proc.wait(timeout=30)


def _wait_for(model, pk: int, timeout: float = 300):
    """The job once it ended (succeeded / failed / cancelled), polled from the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = model.objects.get(pk=pk)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"{model.__name__} {pk} still {model.objects.get(pk=pk).status} after {timeout}s")


def _register_endpoint(page, base, slug, vllm_server) -> ModelVersion:
    page.goto(f"{base}/p/{slug}/catalog/")
    page.click("#endpoint-register summary")
    form = page.locator("#endpoint-form")
    form.locator("input[name=name]").fill("vllm-teacher")
    form.locator("select[name=role]").select_option("teacher")
    form.locator("input[name=endpoint_url]").fill(vllm_server.base_url)
    form.locator("input[name=served_model]").fill(vllm_server.model)
    form.locator("input[name=api_key_env]").fill(vllm_server.env_name)
    form.locator("input[name=concurrency]").fill("2")
    form.locator("button").click()
    page.wait_for_selector("#probe-state[data-state=ok]", timeout=120_000)  # the page reloads until probed
    assert "white-box" in page.text_content("#capability")
    return ModelVersion.objects.get(name="vllm-teacher")


def _generate(page, base, slug, teacher, student, prompt_set) -> GenerationJob:
    page.goto(f"{base}/p/{slug}/generation/")
    for version in (teacher, student):
        page.check(f"input[name=model_versions][value='{version.pk}']")
    page.select_option("select[name=prompt_set]", str(prompt_set.pk))
    page.select_option("select[name=split]", "train")
    for name, value in {"prompt_limit": PROMPTS, "k": 1, "temperature": 0, "max_new_tokens": 16}.items():
        page.fill(f"#generation-form input[name={name}]", str(value))
    page.click("#generation-form button")
    page.wait_for_url("**/generation/*/")
    job = _wait_for(GenerationJob, GenerationJob.objects.latest("pk").pk)
    assert job.status == "succeeded", job.error
    page.reload()
    usage = page.locator("#token-usage")
    assert "vllm-teacher" in usage.text_content() and int(usage.locator(".completion-tokens").text_content()) > 0
    return job


def _judge(page, base, slug, teacher, job) -> JudgeJob:
    page.goto(f"{base}/p/{slug}/comparisons/")
    page.select_option("#build-form select[name=job]", str(job.pk))
    page.select_option("#build-form select[name=mode]", "teacher_student")
    with page.expect_navigation():
        page.click("#build-form button")
    page.goto(f"{base}/p/{slug}/judge/")
    page.select_option("#judge-form select[name=teacher]", str(teacher.pk))
    page.select_option("#judge-form select[name=method]", "generative")
    page.click("#judge-form button")
    judge_job = _wait_for(JudgeJob, JudgeJob.objects.latest("pk").pk)
    assert judge_job.status == "succeeded", judge_job.error
    assert 1 <= judge_job.progress_done == judge_job.progress_total  # identical answers make no comparison
    # White-box: the answer tokens' exact log-probs, so every comparison gets a verdict from the server;
    # the demo teacher is no judge (~0 mass on A/B), so each is marked low-mass and counted on the page.
    verdicts = Judgement.objects.filter(source="teacher", judge_name=judge_job.judge_name)
    assert verdicts.count() == judge_job.progress_done and judge_job.unparseable == 0
    assert all(v.details["identity"].startswith("generative(endpoint=demo-teacher@") for v in verdicts)
    assert all(p["p_source_ab"] == "prompt_logprobs" for v in verdicts for p in v.details["pairs"])
    page.reload()
    assert page.text_content(f"[data-judge-job='{judge_job.pk}'] .job-low-mass .n") == str(judge_job.low_answer_mass)
    assert judge_job.low_answer_mass == verdicts.count()
    return judge_job


def _annotate(page, base, slug) -> None:
    """The researcher prefers the first answer shown of every open comparison (keyboard: 1, Enter)."""
    page.goto(f"{base}/p/{slug}/annotate/")
    page.wait_for_selector("#item:not([hidden]) .candidate, #empty:not([hidden])")
    while page.is_visible("#item:not([hidden]) .candidate"):
        current = page.get_attribute("#annotate", "data-comparison")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        for _ in range(300):  # polled from here: the page's CSP allows no evaluated strings
            if page.get_attribute("#annotate", "data-comparison") != current:
                break
            page.wait_for_timeout(100)


def _snapshot(page, base, slug) -> PreferenceSnapshot:
    page.goto(f"{base}/p/{slug}/snapshots/")
    page.fill("#snapshot-form input[name=name]", "endpoint-judged")
    page.select_option("#snapshot-form select[name=source_filter]", "both")
    with page.expect_navigation():
        page.click("#snapshot-form button")
    snapshot = PreferenceSnapshot.objects.filter(name="endpoint-judged").first()
    assert snapshot is not None, page.inner_text("main")[:2000]
    assert snapshot.pair_count >= 1
    return snapshot


def _train(page, base, slug, snapshot, student, teacher) -> TrainingRun:
    page.goto(f"{base}/p/{slug}/training/new/?method=dckd")
    page.select_option("select[name=snapshot]", str(snapshot.pk))
    page.select_option("select[name=student]", str(student.pk))
    page.select_option("select[name=teacher_dpo]", str(teacher.pk))
    for name, value in {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 64, "learning_rate": "1e-4",
                        "warmup_ratio": "0", "save_every_steps": 0}.items():
        page.fill(f"input[name='cfg:{name}']", str(value))
    page.click("#launch")
    page.wait_for_url("**/training/runs/*/")
    run = _wait_for(TrainingRun, TrainingRun.objects.latest("pk").pk, timeout=400)
    assert run.status == "succeeded", run.error
    assert "DPO teacher: the endpoint vllm-teacher" in run.log_tail and "teacher DPO of" not in run.log_tail
    return run


def _evaluate(page, base, slug, teacher, trained, prompt_set) -> Evaluation:
    page.goto(f"{base}/p/{slug}/evaluations/")
    page.fill("input[name=name]", "trained student vs the endpoint teacher")
    page.select_option("#evaluation-form select[name=teacher]", str(teacher.pk))
    for box in page.query_selector_all("input[name=model_versions]"):
        box.set_checked(box.get_attribute("value") == str(trained.pk))
    page.select_option("#evaluation-form select[name=prompt_set]", str(prompt_set.pk))
    page.fill("input[name=prompt_limit]", str(PROMPTS))
    page.fill("input[name=max_new_tokens]", "16")
    page.click("#start-evaluation")
    page.wait_for_url("**/evaluations/*/")
    evaluation = _wait_for(Evaluation, Evaluation.objects.latest("pk").pk)
    assert evaluation.status == "succeeded", evaluation.error
    page.reload()
    assert page.query_selector(f"#results tr[data-model='{trained.pk}'] .oracle") is not None
    return evaluation


def test_an_endpoint_teacher_through_the_whole_loop_without_its_weights_in_the_gpu_worker(
        page, vllm_server, endpoint_services, demo_world_dir, project, researcher, artifacts_dir):
    base, ledger = endpoint_services
    slug = project.slug
    student = model_version_register(project=project, name="demo-student", role="student",
                                     source=str(demo_world_dir / "student"))
    prompt_set = import_demo_prompts(project, demo_world_dir, name="demo-tasks")
    browser_login(page, base, researcher.username)

    teacher = _register_endpoint(page, base, slug, vllm_server)
    job = _generate(page, base, slug, teacher, student, prompt_set)
    judge_job = _judge(page, base, slug, teacher, job)
    assert judge_job.judge_name == "teacher:generative:vllm-teacher"
    _annotate(page, base, slug)
    snapshot = _snapshot(page, base, slug)
    run = _train(page, base, slug, snapshot, student, teacher)
    run.refresh_from_db()
    assert run.teacher_dpo == teacher  # the endpoint is the run's DPO teacher: no π_dpo stage was trained
    trained = ModelVersion.objects.get(produced_by=run)
    evaluation = _evaluate(page, base, slug, teacher, trained, prompt_set)
    assert evaluation.results["teacher_judge"].startswith("generative(endpoint=demo-teacher@")
    signals = [o.signals for o in EvaluationOutput.objects.filter(evaluation=evaluation, model_version=trained)]
    assert signals and all(s["teacher_logp"] and len(s["teacher_logp"]) == len(s["tokens"]) for s in signals)  # the heatmap, from the server
    page.screenshot(path=str(artifacts_dir / "endpoint-teacher-evaluation.png"), full_page=True)

    loaded = [json.loads(line)["source"] for line in ledger.read_text().splitlines()]
    assert str(demo_world_dir / "student") in loaded  # the ledger works: the student was loaded (and trained)
    teacher_dir = str(vllm_server.model_dir)
    assert not [source for source in loaded if source.startswith(teacher_dir)], loaded
