"""The leakage rules and the provenance of a snapshot: frozen after an evaluation (oracle and teacher
verdicts on held-out prompts) and next to comparisons of held-out prompts, a snapshot holds none of
them; it records the sources it drew on and its pairs' agreement, and the snapshot page shows both,
warning when people barely agree."""
import pytest

from webapp.annotation import services, snapshots
from webapp.annotation.models import Comparison, Judgement, JudgementSource
from webapp.catalog.models import Prompt, Split
from webapp.evaluation import services as evaluation_services
from webapp.evaluation.models import Evaluation
from webapp.generation.models import Generation

pytestmark = pytest.mark.django_db


def _decide(comparison, person, *, chosen_position: int):
    a, b = [i.generation_id for i in comparison.items.order_by("position")]
    ranking = [[a], [b]] if chosen_position == 0 else [[b], [a]]
    services.judgement_record(comparison=comparison, annotator=person, ranking=ranking)


@pytest.fixture
def after_an_evaluation(project, world, pairwise, annotator, settings, tmp_path):
    """Training comparisons judged by a person and the teacher-judge; then the last two prompts are
    held out (eval split) and an evaluation compares the student with the teacher on them, judged by
    the oracle and the teacher-judge. The held-out prompts' training comparisons are judged too."""
    settings.DATA_DIR = tmp_path
    held_out = list(Prompt.objects.filter(prompt_set=world["prompt_set"]).order_by("-id")[:2])
    Prompt.objects.filter(pk__in=[p.pk for p in held_out]).update(split=Split.EVAL)
    for comparison in pairwise:
        _decide(comparison, annotator, chosen_position=1)
        a, b = [i.generation_id for i in comparison.items.order_by("position")]
        services.teacher_judgement_record(comparison_id=comparison.pk, judge_name="teacher:generative:teacher-7b",
                                          judge_model=world["teacher"], probability=0.3, outcome=0.0, ranking=[], details={},
                                          shown_order=[[a, b], [b, a]])
    evaluation = Evaluation.objects.create(project=project, name="held-out", prompt_set=world["prompt_set"],
                                           teacher=world["teacher"], judges=["teacher", "oracle"], status="succeeded")
    for prompt in held_out:
        student, teacher = (Generation.objects.filter(prompt=prompt, model_version=world[role]).first() for role in ("student", "teacher"))
        comparison = evaluation_services.pair_comparison_store(project=project, prompt=prompt, first=student, second=teacher,
                                                               source="evaluation", evaluation=evaluation, for_humans=False)
        evaluation_services.machine_judgement_store(comparison=comparison, source="oracle", judge_name="oracle:demo-tasks",
                                                    verdict="a")
        evaluation_services.machine_judgement_store(comparison=comparison, source="teacher", verdict="a", probability=0.9,
                                                    judge_name="teacher:generative:teacher-7b")
    return {"held_out": held_out, "evaluation": evaluation}


@pytest.mark.parametrize("source_filter", ["both", "teacher", "humans"])
def test_a_snapshot_frozen_after_an_evaluation_holds_no_eval_prompt_and_no_oracle_pair(project, after_an_evaluation,
                                                                                       pairwise, source_filter):
    held_out = {p.pk for p in after_an_evaluation["held_out"]}
    snapshot = snapshots.snapshot_freeze(project=project, name=f"after-eval-{source_filter}", source_filter=source_filter)
    pairs = list(snapshot.pairs.all())
    assert pairs, "the training comparisons still make pairs"
    assert sum(p.prompt_id in held_out for p in pairs) == 0
    assert Prompt.objects.filter(pk__in=[p.prompt_id for p in pairs], split=Split.EVAL).count() == 0
    judgement_ids = {j for p in pairs for j in p.provenance["judgements"]}
    assert Judgement.objects.filter(pk__in=judgement_ids, source=JudgementSource.ORACLE).count() == 0
    assert Comparison.objects.filter(pk__in=[p.provenance["comparison"] for p in pairs], evaluation__isnull=False).count() == 0
    on_held_out = sum(c.prompt_id in held_out for c in pairwise)
    assert on_held_out > 0 and snapshot.pair_count == len(pairwise) - on_held_out
    assert snapshot.stats["evaluation_comparisons_excluded"] == 2
    assert snapshot.stats["eval_prompt_comparisons_excluded"] == on_held_out
    assert "oracle" not in snapshot.sources


def test_an_oracle_verdict_on_a_training_comparison_is_never_a_label(project, world, pairwise, settings, tmp_path):
    """Even where an oracle verdict sits on an ordinary comparison, the snapshot will not learn from it."""
    settings.DATA_DIR = tmp_path
    for comparison in pairwise:
        evaluation_services.machine_judgement_store(comparison=comparison, source="oracle", judge_name="oracle:demo-tasks",
                                                    verdict="a")
    with pytest.raises(Exception, match="No preference pairs"):
        snapshots.snapshot_freeze(project=project, name="oracle-only", source_filter="teacher")


def test_the_snapshot_records_its_sources_and_the_page_shows_them(project, after_an_evaluation, client_for, researcher,
                                                                  annotator):
    snapshot = snapshots.snapshot_freeze(project=project, name="sources", source_filter="both")
    n = snapshot.pair_count  # one human and one teacher vote behind each pair
    assert snapshot.sources == {"human": {"judgements": n, "annotators": 1},
                                "teacher": {"teacher:generative:teacher-7b": n}}
    page = client_for(researcher).get(f"/p/{project.slug}/snapshots/{snapshot.pk}/").content.decode()
    assert f"humans: {n} judgements from 1 annotator" in page
    assert f"teacher:generative:teacher-7b · {n}" in page
    # The judge (P(a ≻ b) = 0.3, so b) and the one person (b) agree everywhere; no item has two people.
    assert snapshot.agreement["judges"] == [{"name": "teacher:generative:teacher-7b", "n": n, "agreement": 1.0,
                                             "kappa": None}]
    assert snapshot.agreement["multi_rated"] == 0 and snapshot.agreement["warnings"] == []
    assert "human agreement is unknown" in page


@pytest.fixture
def careless_pair(project, world, annotator, second_annotator, settings, tmp_path):
    """Two annotators on every comparison who agree on only half of them (a coin flip)."""
    from webapp.annotation.services import comparisons_build

    settings.DATA_DIR = tmp_path
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student", required_annotations=2)
    for index, comparison in enumerate(comparisons):
        _decide(comparison, annotator, chosen_position=index % 2)
        _decide(comparison, second_annotator, chosen_position=(index // 2) % 2)
    return comparisons


def test_low_agreement_is_warned_on_the_snapshot_page(project, careless_pair, client_for, researcher):
    # The disputed half stays out of the pairs, yet it counts for agreement: the pairs alone would look unanimous.
    snapshot = snapshots.snapshot_freeze(project=project, name="careless", source_filter="humans")
    assert snapshot.agreement["multi_rated"] >= 5
    assert snapshot.agreement["alpha"] < 0.4
    assert any("Krippendorff" in w for w in snapshot.agreement["warnings"])
    page = client_for(researcher).get(f"/p/{project.slug}/snapshots/{snapshot.pk}/").content.decode()
    assert 'id="agreement-warnings"' in page and "Low agreement among annotators" in page


def test_agreeing_annotators_get_no_warning(project, world, annotator, second_annotator, settings, tmp_path, client_for,
                                            researcher):
    from webapp.annotation.services import comparisons_build

    settings.DATA_DIR = tmp_path
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student", required_annotations=2)
    for index, comparison in enumerate(comparisons):
        for person in (annotator, second_annotator):
            _decide(comparison, person, chosen_position=index % 2)
    snapshot = snapshots.snapshot_freeze(project=project, name="agreed", source_filter="humans")
    assert snapshot.agreement["alpha"] == pytest.approx(1.0) and snapshot.agreement["warnings"] == []
    page = client_for(researcher).get(f"/p/{project.slug}/snapshots/{snapshot.pk}/").content.decode()
    assert 'id="agreement-warnings"' not in page and 'id="agreement-alpha">1.00' in page
