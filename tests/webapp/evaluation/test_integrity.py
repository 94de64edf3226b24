"""Whether an evaluation can be trusted, as a researcher sees it: a student trained (through a
snapshot, or through a build's declared SFT data, anywhere in its lineage) on prompts the evaluation
scores is flagged contaminated on the evaluation page and left unranked on the leaderboard; a
student scoring below its parent is flagged with the paired CI. Rows are written through the
services, so each answer is known."""
import json

import pytest

from webapp.annotation.models import PreferencePair, PreferenceSnapshot
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.catalog.services import prompt_content_hash
from webapp.evaluation import integrity, services
from webapp.evaluation.models import Evaluation
from webapp.generation.models import Generation

pytestmark = pytest.mark.django_db
N = 20
LENGTH = {"length": {"mean": 1.0, "median": 1.0, "p90": 1.0, "n": N}}


@pytest.fixture
def world(project, tmp_path):
    """A demo-like build dir (build.json naming its SFT prompt hashes: the first 3 held-out prompts'
    texts among them), a teacher and a base student from it, N held-out prompts."""
    texts = [f"What is {i} + {i}?" for i in range(N)]
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "sft_hashes.txt").write_text("".join(prompt_content_hash(text=t) + "\n"
                                                                 for t in texts[:3] + ["What is 99 + 1?"]))
    (tmp_path / "build.json").write_text(json.dumps({"sft_prompt_hashes": {"file": "prompts/sft_hashes.txt", "count": 4}}))
    teacher = ModelVersion.objects.create(project=project, name="teacher", role="teacher", source="org/teacher")
    base = ModelVersion.objects.create(project=project, name="base-student", role="student", source="org/other-student")
    held_out = PromptSet.objects.create(project=project, name="held-out")
    prompts = [Prompt.objects.create(prompt_set=held_out, text=t, split="eval", content_hash=prompt_content_hash(text=t))
               for t in texts]
    return {"dir": tmp_path, "teacher": teacher, "base": base, "prompts": prompts, "prompt_set": held_out}


def _snapshot_on(project, world, texts, name):
    """A snapshot whose pairs use the same texts as held-out prompts, imported again as training prompts."""
    train = PromptSet.objects.create(project=project, name=f"train-{name}")
    snapshot = PreferenceSnapshot.objects.create(project=project, name=name, content_hash=name * 8, pair_count=len(texts))
    for text in texts:
        prompt = Prompt.objects.create(prompt_set=train, text=text, split="train", content_hash=prompt_content_hash(text=text))
        chosen, rejected = (Generation.objects.create(prompt=prompt, model_version=world["teacher"], text=t, token_count=1)
                            for t in ("4", "5"))
        PreferencePair.objects.create(snapshot=snapshot, prompt=prompt, chosen=chosen, rejected=rejected, prompt_text=text,
                                      chosen_text="4", rejected_text="5")
    return snapshot


def _evaluation(project, world, candidates, correct):
    """An evaluation on the held-out prompts; correct[model name] = how many of the N it got right."""
    evaluation = Evaluation.objects.create(project=project, name="held-out eval", prompt_set=world["prompt_set"],
                                           teacher=world["teacher"], judges=["oracle"], status="succeeded")
    evaluation.model_versions.set(candidates)
    for mv in [world["teacher"], *candidates]:
        for index, prompt in enumerate(world["prompts"]):
            services.evaluation_output_store(evaluation=evaluation, model_version=mv, prompt=prompt, text="x", token_count=1,
                                             oracle_correct=index < correct.get(mv.name, N))
    return evaluation


def test_a_contaminated_model_is_flagged_on_the_evaluation_page(project, world, client_for, researcher):
    snapshot = _snapshot_on(project, world, [p.text for p in world["prompts"][:5]], "leaky")
    leaky = ModelVersion.objects.create(project=project, name="leaky-student", role="student", source="runs/leaky",
                                        parent=world["base"], snapshot=snapshot, method="dpo")
    evaluation = _evaluation(project, world, [world["base"], leaky], {"base-student": 10, "leaky-student": 12})
    services.evaluation_results_store(evaluation=evaluation, results={"models": {str(mv.id): LENGTH for mv in (world["teacher"], leaky, world["base"])}})
    services.leaderboard_store(project=project, scores={"all": {"pairs": 40, "error": "", "rows": [
        {"model_version": leaky.id, "name": leaky.name, "score": 0.5, "low": 0.1, "high": 0.9, "games": 20},
        {"model_version": world["base"].id, "name": "base-student", "score": 0.2, "low": -0.1, "high": 0.5, "games": 20}]}})

    report = integrity.evaluation_contamination(evaluation=evaluation)
    assert report[leaky.id]["overlap"] == 5 and report[leaky.id]["contaminated"]
    assert report[world["base"].id] == {"prompts": N, "overlap": 0, "share": 0.0, "contaminated": False, "sources": []}
    page = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert 'id="contamination-warning"' in page
    assert f"CONTAMINATED: 5/{N} prompts seen in training" in page
    assert "snapshot leaky (trained leaky-student): 5" in page
    # The leaderboard shows the contaminated model's score but does not rank it: the clean one is #1.
    board = page[page.index('id="leaderboard-table"'):]
    assert "unranked" in board and "<tr><td>1</td>\n        <td>base-student" in board


def test_declared_sft_data_in_the_lineage_contaminates_descendants(project, world, client_for, researcher):
    demo_student = ModelVersion.objects.create(project=project, name="demo-student", role="student",
                                               source=str(world["dir"] / "student"))
    child = ModelVersion.objects.create(project=project, name="child", role="student", source="runs/child",
                                        parent=demo_student)
    evaluation = _evaluation(project, world, [child], {})
    report = integrity.evaluation_contamination(evaluation=evaluation)
    assert report[child.id]["overlap"] == 3
    assert report[child.id]["sources"] == [{"label": "SFT data (sft_hashes.txt)", "via": "demo-student", "kind": "sft",
                                            "overlap": 3}]
    assert report[world["teacher"].id]["overlap"] == 0  # the teacher lives elsewhere
    page = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert 'id="contamination-warning"' in page and "SFT data (sft_hashes.txt) (trained demo-student): 3" in page
    assert "child's parent demo-student is not in this evaluation" in page


def test_a_clean_evaluation_says_so(project, world, client_for, researcher):
    evaluation = _evaluation(project, world, [world["base"]], {})
    services.evaluation_results_store(evaluation=evaluation, results={"models": {str(mv.id): LENGTH for mv in (world["teacher"], world["base"])}})
    page = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert 'id="contamination-warning"' not in page and "base-student" in page
    assert f"no scored prompt in their training data ({N} prompts checked" in page


def test_a_student_below_its_parent_is_flagged_with_the_ci(project, world, client_for, researcher):
    worse = ModelVersion.objects.create(project=project, name="worse-student", role="student", source="runs/worse",
                                        parent=world["base"], method="dpo")
    evaluation = _evaluation(project, world, [world["base"], worse], {"base-student": 16, "worse-student": 4})
    services.evaluation_results_store(evaluation=evaluation, results={"versus_teacher": {
        str(world["base"].id): {"oracle": {"rate": 0.40, "low": 0.3, "high": 0.5, "n": N}},
        str(worse.id): {"oracle": {"rate": 0.10, "low": 0.02, "high": 0.2, "n": N}}}})
    [row] = integrity.evaluation_regressions(evaluation=evaluation)
    assert row["parent"] == world["base"] and row["below"] and row["significant"]
    assert row["oracle"]["delta"] == pytest.approx(-12 / N) and row["oracle"]["high"] < 0 < row["oracle"]["n"]
    page = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert "worse-student scores below its parent base-student" in page and "the 95% CI excludes a tie" in page
    assert "oracle accuracy Δ <b>-0.600</b>" in page


def test_a_student_that_improves_on_its_parent_is_not_flagged(project, world, client_for, researcher):
    better = ModelVersion.objects.create(project=project, name="better-student", role="student", source="runs/better",
                                         parent=world["base"], method="dckd")
    evaluation = _evaluation(project, world, [world["base"], better], {"base-student": 8, "better-student": 15})
    [row] = integrity.evaluation_regressions(evaluation=evaluation)
    assert not row["below"] and row["oracle"]["delta"] == pytest.approx(7 / N)
    page = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert "scores below its parent" not in page and "better-student vs parent base-student" in page
