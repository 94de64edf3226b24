"""workers/tasks/gpu/loop.py run in this process on the tiny demo models: a round's answers come from
the generation backend (HF on the models its signals use, one load each), and an explicit vllm that
cannot run fails the round with the reason (the full two-round loop is tests/workers/test_loop.py)."""
import pytest
import torch

from ml import backends
from ml.generation import generate
from ml.modeling import load_model
from tests.webapp.conftest import admin_user, project, researcher  # noqa: F401  (fixtures)
from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp.evaluation import loop_services
from webapp.evaluation.models import LoopRound
from webapp.generation.models import Generation
from workers.tasks.gpu import loop as task_module
from workers.tasks.gpu.loop import run_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def loop_round(project, researcher, tiny_demo_dir):
    torch.set_num_threads(1)
    teacher, student = register_demo_models(project, tiny_demo_dir)
    return loop_services.loop_round_start(project=project, student=student, teacher=teacher,
                                          prompt_set=import_demo_prompts(project, tiny_demo_dir), prompt_count=3,
                                          created_by=researcher)


@pytest.mark.parametrize("backend", ["hf", "auto"])
def test_round_answers_are_greedy_generate_on_one_load_per_model(backend, loop_round, settings, monkeypatch):
    settings.GENERATION_BACKEND = backend
    monkeypatch.setattr(backends, "vllm_problem", lambda: "no CUDA device is visible")
    loads = []
    monkeypatch.setattr(task_module, "load_model", lambda source, **kw: loads.append(source) or load_model(source, **kw))
    assert run_round(loop_round.id) == "succeeded", LoopRound.objects.get(pk=loop_round.id).error
    assert loads == [loop_round.teacher.source, loop_round.student.source]
    for version in (loop_round.teacher, loop_round.student):
        rows = list(Generation.objects.filter(model_version=version, origin="loop").select_related("prompt")
                    .order_by("prompt_id"))
        assert len(rows) == 3
        loaded = load_model(version.source, device="cpu")
        want = generate(loaded.model, loaded.tokenizer, [r.prompt.text for r in rows], k=1, temperature=0.0,
                        max_new_tokens=64)
        assert [r.text for r in rows] == [s[0].text for s in want]


def test_an_explicit_vllm_that_cannot_run_fails_the_round_with_the_reason(loop_round, settings, monkeypatch):
    if backends.vllm_problem() is None:
        pytest.skip("vLLM can run on this host")
    settings.GENERATION_BACKEND = "vllm"
    monkeypatch.setattr(task_module, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert run_round(loop_round.id) == "failed"
    loop_round.refresh_from_db()
    assert loop_round.status == "failed" and not Generation.objects.filter(origin="loop").exists()
    assert loop_round.error.startswith("BackendUnavailable: DISTILLERY_GENERATION_BACKEND=vllm, but ")
