"""The teacher-as-judge task with tiny real models: every chosen comparison gets one verdict with
its probability, both presentation orders (generative judge) and the judge's identity; k-way
comparisons get a ranking; a second job with the same judge replaces, never duplicates."""
import pytest
import torch

from webapp.annotation import judging
from webapp.annotation.models import Comparison, Judgement
from webapp.annotation.services import comparisons_build
from webapp.catalog.services import model_version_register
from webapp.generation.models import Generation, GenerationJob
from webapp.catalog.models import Prompt, PromptSet
from webapp.projects.services import project_create
from workers.tasks.gpu.judging import run_judge_job

torch.set_num_threads(1)
pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_world(django_user_model, tiny_demo_dir, embedded_services):
    owner = django_user_model.objects.create_user(username="rhea-researcher", password="pw-0123456789")
    project = project_create(name="Judge demo", created_by=owner)
    teacher = model_version_register(project=project, name="teacher", role="teacher", source=str(tiny_demo_dir / "teacher"))
    student = model_version_register(project=project, name="student", role="student", source=str(tiny_demo_dir / "student"))
    prompt_set = PromptSet.objects.create(project=project, name="p")
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, k=2, status="succeeded")
    for i, (question, right, wrong) in enumerate([("What is 2 plus 3?", "5", "6"), ("Reverse: cat dog", "dog cat", "cat dog"),
                                                  ("Count the words: sun tree", "2", "3")]):
        prompt = Prompt.objects.create(prompt_set=prompt_set, text=question, content_hash=str(i))
        for s, (mv, text) in enumerate([(teacher, right), (student, wrong), (teacher, right + "."), (student, wrong + "!")]):
            Generation.objects.create(job=job, prompt=prompt, model_version=mv, sample_index=s // 2, text=text)
    gens = Generation.objects.filter(job=job)
    pairwise = comparisons_build(project=project, generations=gens, mode="teacher_student")
    kway = comparisons_build(project=project, generations=gens, mode="kway", kway_size=3)
    return {"project": project, "owner": owner, "teacher": teacher, "student": student, "pairwise": pairwise, "kway": kway}


def test_generative_judge_both_orders(judged_world):
    w = judged_world
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.all())
    assert run_judge_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == ("succeeded", 9, 9)
    verdicts = Judgement.objects.filter(source="teacher")
    assert verdicts.count() == 9 and {v.judge_name for v in verdicts} == {"teacher:generative:teacher"}
    for v in verdicts.filter(comparison__kind="pairwise"):
        ids = [i.generation_id for i in v.comparison.items.order_by("position")]
        assert 0 <= v.probability <= 1 and v.verdict == ("a" if v.probability > 0.5 else "b")
        assert v.shown_order == [ids, ids[::-1]] and v.judge_model == w["teacher"]
        pair = v.details["pairs"][0]
        assert v.probability == pytest.approx((pair["p_ab"] + pair["p_ba"]) / 2)
        assert v.details["identity"].startswith("generative(teacher=")
    for v in verdicts.filter(comparison__kind="kway"):
        assert v.verdict == "ranking" and v.probability is None
        assert sorted(x for g in v.ranking for x in g) == sorted(i.generation_id for i in v.comparison.items.all())
        assert len(v.details["pairs"]) == 3  # 3 candidates -> 3 pairs judged
    # A second job with the same judge replaces its verdicts, never duplicates them.
    again = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                     comparisons=Comparison.objects.filter(kind="pairwise"))
    assert run_judge_job(again.pk) == "succeeded" and run_judge_job(again.pk) == "not claimed"
    assert Judgement.objects.filter(source="teacher").count() == 9


def test_likelihood_and_implicit_reward_judges(judged_world):
    w = judged_world
    pairwise = Comparison.objects.filter(kind="pairwise")
    likelihood = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="likelihood",
                                          comparisons=pairwise)
    run_judge_job(likelihood.pk)
    implicit = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], reference=w["student"],
                                        method="implicit_reward", beta=0.1, comparisons=pairwise)
    run_judge_job(implicit.pk)
    names = set(Judgement.objects.values_list("judge_name", flat=True))
    assert names == {"teacher:likelihood:teacher", "teacher:implicit_reward:teacher|student|beta=0.1"}
    assert Judgement.objects.count() == 2 * pairwise.count()
    reward = Judgement.objects.filter(judge_name__startswith="teacher:implicit").first()
    assert {"reward_a", "reward_b"} <= set(reward.details["pairs"][0]) and reward.shown_order == sorted(reward.shown_order)


def test_failure_is_recorded(judged_world):
    w = judged_world
    w["teacher"].source = "/nowhere/model"
    w["teacher"].save()
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.all())
    assert run_judge_job(job.pk) == "failed"  # the error is on the job's page (and in the worker's log)
    job.refresh_from_db()
    assert job.status == "failed" and "nowhere" in job.error


def test_generative_judge_asks_the_jobs_rubric(judged_world):
    """A custom template and answer labels reach the in-worker GenerativeJudge: the verdicts equal
    that judge asked directly with the same rubric; with the threshold at 1.0 every verdict is below
    it, so each is stored marked low-mass and counted on the job."""
    from ml.judges import GenerativeJudge, JudgeItem
    from ml.modeling import load_model

    w, template = judged_world, "Q: {prompt}\n1) {first}\n2) {second}\nBetter: {first_label} or {second_label}?"
    job = judging.judge_job_create(project=w["project"], created_by=w["owner"], teacher=w["teacher"], method="generative",
                                   comparisons=Comparison.objects.filter(kind="pairwise"), template=template,
                                   labels=("5", "6"), answer_mass_threshold=1.0)
    assert run_judge_job(job.pk) == "succeeded"
    job.refresh_from_db()
    verdicts = list(Judgement.objects.filter(source="teacher").select_related("comparison__prompt"))
    assert len(verdicts) == job.low_answer_mass == 6 and job.judge_name.startswith("teacher:generative:teacher|answers=5/6")
    loaded = load_model(w["teacher"].source)
    here = GenerativeJudge(loaded.model, loaded.tokenizer, template, ("5", "6"))
    for v in verdicts:
        pair = v.details["pairs"][0]
        assert pair["low_answer_mass"] is True and v.details["identity"].endswith("answers=5/6)")
        texts = dict(Generation.objects.filter(pk__in=[pair["a"], pair["b"]]).values_list("pk", "text"))
        (direct,) = here.judge_batch([JudgeItem(v.comparison.prompt.text, texts[pair["a"]], texts[pair["b"]])])
        assert v.probability == pytest.approx(direct.p_a_over_b, abs=1e-6)
