"""Comparisons, judgements, undo, skip, leases and adjudication through the services, on the real
database: the rules the annotation page relies on."""
import pytest
from django.core.exceptions import ValidationError

from webapp.annotation import selectors, services
from webapp.annotation.models import Comparison, Judgement
from webapp.generation.models import Generation

pytestmark = pytest.mark.django_db


def _chosen_first(comparison):
    ids = [i.generation_id for i in comparison.items.order_by("position")]
    return [[ids[0]], [ids[1]]]


def test_build_modes(project, world):
    gens = Generation.objects.filter(job=world["job"])
    ts = services.comparisons_build(project=project, generations=gens, mode="teacher_student", required_annotations=2)
    assert len(ts) == 12  # 6 prompts x 2 samples
    assert all(c.items.count() == 2 and c.required_annotations == 2 for c in ts)
    roles = {tuple(i.generation.model_version.role for i in c.items.order_by("position")) for c in ts}
    assert roles == {("teacher", "student")}
    # Building again makes nothing new: the same generation sets exist.
    assert services.comparisons_build(project=project, generations=gens, mode="teacher_student") == []
    ss = services.comparisons_build(project=project, generations=gens, mode="student_student")
    assert len(ss) == 6 and all({i.generation.model_version.role for i in c.items.all()} == {"student"} for c in ss)
    kw = services.comparisons_build(project=project, generations=gens, mode="kway", kway_size=3)
    assert len(kw) == 6 and all(c.kind == "kway" and c.items.count() == 3 for c in kw)


def test_identical_answers_are_not_compared(project):
    from tests.webapp.annotation.conftest import make_world

    world = make_world(project, prompts=2, texts=lambda i, role, s: "same answer")
    built = services.comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]), mode="teacher_student")
    assert built == []


def test_verdict_is_canonical_and_status_follows(project, pairwise, annotator, second_annotator):
    comparison = pairwise[0]
    Comparison.objects.filter(pk=comparison.pk).update(required_annotations=2)
    a, b = [i.generation_id for i in comparison.items.order_by("position")]
    j1, created = services.judgement_record(comparison=comparison, annotator=annotator, ranking=[[b], [a]])
    assert created and j1.verdict == "b" and j1.ranking == [[b], [a]]
    assert sorted(j1.shown_order) == sorted([a, b])
    assert Comparison.objects.get(pk=comparison.pk).status == "open"
    services.judgement_record(comparison=comparison, annotator=second_annotator, ranking=[[a], [b]])
    assert Comparison.objects.get(pk=comparison.pk).status == "disputed"


def test_ranking_must_cover_the_candidates(project, pairwise, annotator):
    comparison = pairwise[0]
    a, b = [i.generation_id for i in comparison.items.order_by("position")]
    for bad in ([[a]], [[a], [a]], [[a], [b], [999]], "x", [[a, b], []]):
        with pytest.raises(ValidationError):
            services.judgement_record(comparison=comparison, annotator=annotator, ranking=bad)
    assert not Judgement.objects.exists()


def test_repeat_same_verdict_is_idempotent_and_different_is_refused(project, pairwise, annotator):
    comparison = pairwise[0]
    ranking = _chosen_first(comparison)
    first, created = services.judgement_record(comparison=comparison, annotator=annotator, ranking=ranking)
    again, created_again = services.judgement_record(comparison=comparison, annotator=annotator, ranking=ranking)
    assert created and not created_again and first.pk == again.pk
    with pytest.raises(ValidationError, match="already judged"):
        services.judgement_record(comparison=comparison, annotator=annotator, ranking=ranking[::-1])
    assert Judgement.objects.count() == 1


def test_next_never_repeats_and_skips_are_remembered(project, pairwise, annotator):
    seen = []
    for _ in range(len(pairwise)):
        comparison = selectors.comparison_next_for(project=project, annotator=annotator)
        assert comparison is not None and comparison.pk not in seen
        seen.append(comparison.pk)
        if len(seen) % 3 == 0:
            services.comparison_skip(comparison=comparison, annotator=annotator)
        else:
            services.judgement_record(comparison=comparison, annotator=annotator, ranking=_chosen_first(comparison))
    assert selectors.comparison_next_for(project=project, annotator=annotator) is None
    assert sorted(seen) == sorted(c.pk for c in pairwise)


def test_leases_spread_annotators_over_items(project, pairwise, annotator, second_annotator):
    first = selectors.comparison_next_for(project=project, annotator=annotator)
    other = selectors.comparison_next_for(project=project, annotator=second_annotator)
    assert first.pk != other.pk  # overlap 1: the first item is on annotator's screen
    # A reload shows the same item again.
    assert selectors.comparison_next_for(project=project, annotator=annotator).pk == first.pk


def test_undo_reopens_and_serves_the_item_again(project, pairwise, annotator):
    comparison = selectors.comparison_next_for(project=project, annotator=annotator)
    services.judgement_record(comparison=comparison, annotator=annotator, ranking=_chosen_first(comparison))
    assert Comparison.objects.get(pk=comparison.pk).status == "complete"
    selectors.comparison_next_for(project=project, annotator=annotator)  # moves on to another item
    undone = services.judgement_undo(project=project, annotator=annotator)
    assert undone.pk == comparison.pk
    assert not Judgement.objects.filter(annotator=annotator).exists()
    assert Comparison.objects.get(pk=comparison.pk).status == "open"
    assert services.judgement_undo(project=project, annotator=annotator) is None


def test_adjudication_settles_a_dispute(project, pairwise, annotator, second_annotator, researcher):
    comparison = pairwise[0]
    Comparison.objects.filter(pk=comparison.pk).update(required_annotations=2)
    ranking = _chosen_first(comparison)
    services.judgement_record(comparison=comparison, annotator=annotator, ranking=ranking)
    services.judgement_record(comparison=comparison, annotator=second_annotator, ranking=ranking[::-1])
    judgement = services.comparison_adjudicate(comparison=comparison, researcher=researcher, ranking=ranking, rationale="1 is right")
    assert judgement.is_adjudication and judgement.verdict == "a"
    assert Comparison.objects.get(pk=comparison.pk).status == "adjudicated"


def test_a_held_lease_is_renewed_when_shown_again(project, pairwise, annotator):
    """Issue 10 B6: a reload shows the same item and restarts its lease, so someone working through
    a long item does not lose it to the queue while it is on their screen."""
    from datetime import timedelta

    from django.utils import timezone

    from webapp.annotation.models import Assignment

    first = selectors.comparison_next_for(project=project, annotator=annotator)
    Assignment.objects.filter(annotator=annotator).update(expires_at=timezone.now() + timedelta(seconds=20))
    assert selectors.comparison_next_for(project=project, annotator=annotator).pk == first.pk
    lease = Assignment.objects.get(annotator=annotator)
    assert lease.expires_at > timezone.now() + services.LEASE - timedelta(seconds=30)


def test_kway_verdicts_read_in_column_numbers(project, world):
    """Issue 10 B23, the k-way case: a ranking reads in the page's column numbers."""
    comparison = services.comparisons_build(project=project, generations=world["job"].generations.all(), mode="kway", limit=1)[0]
    items = list(comparison.items.order_by("position"))
    g = [i.generation_id for i in items]
    judgement = Judgement(verdict="ranking", ranking=[[g[2]], [g[1], g[0]]] + [[x] for x in g[3:]])
    assert selectors.verdict_in_columns(judgement, items) == "3 > 1 = 2" + "".join(f" > {n}" for n in range(4, len(g) + 1))
