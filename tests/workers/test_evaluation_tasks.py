"""The evaluation job run in-process on the tiny demo models against the real test database: answers,
comparisons, teacher-judge (both orders) and oracle verdicts, token signals, results with bootstrap
CIs, the leaderboard, and human verdicts joining the win rates."""
import math

import pytest
import torch

from ml.demo.tasks import oracle_score
from ml.metrics import model_token_kl
from ml.modeling import load_model
from tests.webapp.conftest import admin_user, annotator, project, researcher  # noqa: F401  (fixtures)
from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp.annotation.models import Comparison, Judgement
from webapp.annotation.services import judgement_record
from webapp.evaluation import selectors, services
from webapp.evaluation.models import Evaluation, EvaluationOutput, Leaderboard
from workers.tasks.evaluation import refresh_results
from workers.tasks.gpu.evaluation import run_evaluation

pytestmark = pytest.mark.django_db
OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def finished(project, researcher, tiny_demo_dir):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    prompt_set = import_demo_prompts(project, tiny_demo_dir)
    evaluation = services.evaluation_create(
        project=project, name="tiny", teacher=teacher, model_versions=[student], prompt_set=prompt_set,
        judges=["teacher", "oracle"], created_by=researcher,
        config={"split": "eval", "prompt_limit": 8, "teacher_judge": "generative", "max_new_tokens": 6, "n_boot": 300})
    assert run_evaluation(evaluation.id) == "succeeded"
    evaluation.refresh_from_db()
    return evaluation, teacher, student


def test_evaluation_job_stores_answers_verdicts_and_results(finished, tiny_demo_dir):
    evaluation, teacher, student = finished
    assert evaluation.status == "succeeded" and evaluation.error == ""
    outputs = EvaluationOutput.objects.filter(evaluation=evaluation).select_related("generation", "prompt")
    assert outputs.count() == 16  # 8 held-out prompts x (teacher + student)
    assert {o.prompt.split for o in outputs} == {"eval"}
    for output in outputs:  # the oracle column is the demo task checker itself
        assert output.oracle_correct == oracle_score(output.prompt.text, output.generation.text)

    comparisons = Comparison.objects.filter(evaluation=evaluation)
    assert comparisons.count() == 8 and set(comparisons.values_list("status", flat=True)) == {"complete"}
    teacher_verdicts = Judgement.objects.filter(comparison__evaluation=evaluation, source="teacher")
    assert teacher_verdicts.count() == 8
    for judgement in teacher_verdicts:  # both orders judged; the order-averaged probability decides (docs/judging.md)
        p_ab, p_ba = judgement.details["p_ab"], judgement.details["p_ba"]
        mean = (p_ab + p_ba) / 2
        expected = "a" if mean > 0.5 else "b" if mean < 0.5 else "tie"
        assert judgement.verdict == expected
        assert judgement.probability == pytest.approx((p_ab + p_ba) / 2)
        assert len(judgement.shown_order) == 2  # the pair in both presentation orders
    assert Judgement.objects.filter(comparison__evaluation=evaluation, source="oracle").count() == 8

    results = evaluation.results
    student_stats = results["models"][str(student.id)]
    correct = [o.oracle_correct for o in outputs if o.model_version_id == student.id]
    assert student_stats["oracle"]["overall"] == pytest.approx(sum(correct) / len(correct))
    assert student_stats["length"]["mean"] == pytest.approx(
        sum(o.generation.token_count for o in outputs if o.model_version_id == student.id) / 8)
    versus = results["versus_teacher"][str(student.id)]
    for source in ("teacher", "oracle"):
        outcomes = [OUTCOME[v] for v in Judgement.objects.filter(comparison__evaluation=evaluation, source=source)
                    .values_list("verdict", flat=True)]
        assert versus[source]["n"] == 8
        assert versus[source]["rate"] == pytest.approx(sum(outcomes) / 8)
        assert versus[source]["low"] <= versus[source]["rate"] <= versus[source]["high"]

    # KL to the teacher: teacher-forced on the teacher's answers, recomputed here from the stored answers.
    t, s = load_model(teacher.source, device="cpu"), load_model(student.source, device="cpu")
    teacher_answers = [(o.prompt.text, o.generation.text) for o in outputs if o.model_version_id == teacher.id]
    assert student_stats["kl_to_teacher"] == pytest.approx(model_token_kl(t.model, s.model, t.tokenizer, teacher_answers),
                                                           rel=1e-4)


def test_token_signals_match_the_models(finished):
    evaluation, teacher, student = finished
    output = EvaluationOutput.objects.filter(evaluation=evaluation, model_version=student).select_related(
        "generation", "prompt").first()
    signals = output.signals
    assert len(signals["tokens"]) == len(signals["teacher_logp"]) == len(signals["kl"]) >= 1
    assert signals["advantage"] is None  # no DPO/SFT teacher pair was named
    assert all(v <= 0 for v in signals["teacher_logp"]) and all(v >= -1e-6 for v in signals["kl"])
    t, s = load_model(teacher.source, device="cpu"), load_model(student.source, device="cpu")
    mean_kl = model_token_kl(t.model, s.model, t.tokenizer, [(output.prompt.text, output.generation.text)])
    assert signals["mean_kl"] == pytest.approx(mean_kl, abs=1e-3)
    comparison = Comparison.objects.get(evaluation=evaluation, prompt=output.prompt)
    assert comparison.priority == pytest.approx(signals["mean_kl"])


def test_leaderboard_fits_every_pairwise_outcome(finished):
    evaluation, teacher, student = finished
    board = Leaderboard.objects.get(project=evaluation.project)
    judge_rows = board.scores["judge"]["rows"]
    assert {r["model_version"] for r in judge_rows} == {teacher.id, student.id}
    assert board.scores["judge"]["pairs"] == 16 and board.scores["human"]["pairs"] == 0
    # Two players: the score gap is the log of the win ratio, with one virtual tie (prior 1) on the edge.
    pairs = selectors.leaderboard_pairs(project=evaluation.project, source="judge")
    wins_student = sum(o for a, b, o in pairs) + 0.5
    wins_teacher = sum(1 - o for a, b, o in pairs) + 0.5
    scores = {r["model_version"]: r["score"] for r in judge_rows}
    assert scores[student.id] - scores[teacher.id] == pytest.approx(math.log(wins_student / wins_teacher), abs=1e-6)


def test_human_verdicts_join_the_results(finished, annotator):
    evaluation, teacher, student = finished
    assert services.evaluation_send_to_humans(evaluation=evaluation, required_annotations=1) == 8
    comparison = Comparison.objects.filter(evaluation=evaluation).order_by("-priority").first()
    assert comparison.status == "open"
    candidate, reference = comparison.items.order_by("position").values_list("generation_id", flat=True)
    judgement_record(comparison=comparison, annotator=annotator, ranking=[[candidate], [reference]])  # student chosen
    refresh_results(evaluation.id)
    evaluation.refresh_from_db()
    human = evaluation.results["versus_teacher"][str(student.id)]["human"]
    assert human["n"] == 1 and human["rate"] == 1.0
    assert "humans" in Evaluation.objects.get(pk=evaluation.pk).judges


def test_advantage_signal_is_dpo_minus_sft_log_prob_of_each_token(tiny_demo_dir):
    from ml.token_heatmaps import token_signals

    teacher = load_model(str(tiny_demo_dir / "teacher"), device="cpu")
    student = load_model(str(tiny_demo_dir / "student"), device="cpu")
    prompts, answers = ["What is 2 plus 3?", "Sort the words: cat dog"], ["5", "cat dog"]
    as_dpo = token_signals(teacher, student, prompts, answers, dpo=teacher, sft=student)
    student_logp = token_signals(student, None, prompts, answers)  # the student's own log-prob of each token
    for row, own in zip(as_dpo, student_logp):
        assert row["tokens"] == own["tokens"] and row["tokens"][-1] == "<eos>"
        assert row["advantage"] == pytest.approx([t - s for t, s in zip(row["teacher_logp"], own["teacher_logp"])], abs=2e-4)
    same = token_signals(teacher, student, prompts, answers, dpo=teacher, sft=teacher)
    assert all(a == 0 for row in same for a in row["advantage"])


def test_implicit_judge_evaluation_loads_pi_dpo_and_pi_sft_once(project, researcher, tiny_demo_dir, monkeypatch):
    """B18: the implicit-reward judge and the advantage signals share one load of π_dpo and π_sft."""
    from workers.tasks.gpu import evaluation as task_module

    teacher, student = register_demo_models(project, tiny_demo_dir)
    pi_dpo, pi_sft = teacher, student  # any two models of one vocabulary stand in for the teacher's stages
    prompt_set = import_demo_prompts(project, tiny_demo_dir)
    loads = []

    def counting_load(source, **kwargs):
        loads.append(source)
        return load_model(source, **kwargs)

    monkeypatch.setattr(task_module, "load_model", counting_load)
    evaluation = services.evaluation_create(
        project=project, name="implicit", teacher=teacher, model_versions=[student], prompt_set=prompt_set,
        judges=["teacher"], created_by=researcher,
        config={"split": "eval", "prompt_limit": 3, "teacher_judge": "implicit", "teacher_dpo_id": pi_dpo.id,
                "teacher_sft_id": pi_sft.id, "max_new_tokens": 4, "n_boot": 50})
    assert run_evaluation(evaluation.id) == "succeeded", Evaluation.objects.get(pk=evaluation.id).error
    # teacher, then π_dpo and π_sft once each (judge + signals), then the candidate: four loads, not six
    assert loads == [teacher.source, pi_dpo.source, pi_sft.source, student.source]
    assert Judgement.objects.filter(comparison__evaluation=evaluation, source="teacher").count() == 3


def _cheap_evaluation(project, researcher, tiny_demo_dir, name):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    prompt_set = import_demo_prompts(project, tiny_demo_dir)
    evaluation = services.evaluation_create(
        project=project, name=name, teacher=teacher, model_versions=[student], prompt_set=prompt_set,
        judges=["oracle"], created_by=researcher, config={"split": "eval", "prompt_limit": 3, "max_new_tokens": 5,
                                                          "n_boot": 20})
    return evaluation, teacher, student


@pytest.mark.parametrize("backend", ["hf", "auto"])
def test_answers_come_from_the_generation_backend_on_one_load_per_model(backend, project, researcher, tiny_demo_dir,
                                                                        settings, monkeypatch):
    """hf, and auto where vLLM cannot run, answer with HF generate on the very model the signals use:
    the answers are greedy generate's, and each model is loaded once."""
    from ml import backends
    from ml.generation import generate
    from workers.tasks.gpu import evaluation as task_module

    settings.GENERATION_BACKEND = backend
    monkeypatch.setattr(backends, "vllm_problem", lambda: "no CUDA device is visible")
    loads = []
    monkeypatch.setattr(task_module, "load_model", lambda source, **kw: loads.append(source) or load_model(source, **kw))
    evaluation, teacher, student = _cheap_evaluation(project, researcher, tiny_demo_dir, backend)
    assert run_evaluation(evaluation.id) == "succeeded", Evaluation.objects.get(pk=evaluation.id).error
    assert loads == [teacher.source, student.source]
    for version in (teacher, student):
        rows = EvaluationOutput.objects.filter(evaluation=evaluation, model_version=version).order_by("prompt_id")
        loaded = load_model(version.source, device="cpu")
        want = generate(loaded.model, loaded.tokenizer, [r.prompt.text for r in rows], k=1, temperature=0.0,
                        max_new_tokens=5)
        assert [r.generation.text for r in rows] == [s[0].text for s in want]
        assert [r.generation.token_count for r in rows] == [len(s[0].token_ids) for s in want]


def test_an_explicit_vllm_that_cannot_run_fails_the_evaluation_with_the_reason(project, researcher, tiny_demo_dir,
                                                                               settings, monkeypatch):
    from ml import backends
    from workers.tasks.gpu import evaluation as task_module

    if backends.vllm_problem() is None:
        pytest.skip("vLLM can run on this host")
    settings.GENERATION_BACKEND = "vllm"
    monkeypatch.setattr(task_module, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    evaluation, _, _ = _cheap_evaluation(project, researcher, tiny_demo_dir, "vllm")
    assert run_evaluation(evaluation.id) == "failed"
    evaluation.refresh_from_db()
    assert evaluation.status == "failed" and not EvaluationOutput.objects.filter(evaluation=evaluation).exists()
    assert evaluation.error == f"BackendUnavailable: DISTILLERY_GENERATION_BACKEND=vllm, but {backends.vllm_problem()}; " \
                               "set it to 'hf' or 'auto' on this host"
