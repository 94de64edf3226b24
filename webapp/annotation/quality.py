"""The project quality page's numbers: inter-annotator agreement (Cohen's κ per pair of
annotators on pairwise items, Krippendorff's α over all items), agreement between the human
majority and each teacher judge, and each annotator's position and length bias.

They are computed by the default-queue task `refresh_quality` (quality_refresh, reading rows as
plain tuples, a pass over the project's judgements) and stored in QualityReport; the page shows the
stored figures with their age (quality_stored) and asks for a refresh when the project's maintained
judgement count moved since, so a request never recounts a million judgements."""
import math
from collections import defaultdict
from datetime import timedelta

from django.db.models import Sum
from django.db.models.functions import Length
from django.utils import timezone

from webapp.annotation import agreement
from webapp.annotation.models import (ComparisonItem, ComparisonKind, Judgement, JudgementSource, ProjectCounter,
                                      QualityReport, Verdict)
from webapp.celery import enqueue

REFRESH_AGAIN_AFTER = timedelta(minutes=2)  # a refresh asked for and not done by then is asked for again


def quality_report(*, project) -> dict:
    humans = list(Judgement.objects.filter(comparison__project=project, source=JudgementSource.HUMAN, is_adjudication=False)
                  .order_by("id").values_list("comparison_id", "annotator_id", "annotator__username", "verdict", "ranking",
                                              "shown_order", "comparison__kind"))
    lengths = dict(ComparisonItem.objects.filter(comparison__project=project).annotate(n=Length("generation__text"))
                   .values_list("generation_id", "n"))
    by_rater, units, decisions = defaultdict(dict), defaultdict(list), defaultdict(list)
    for comparison_id, _, name, verdict, ranking, shown, kind in humans:
        label = _label(verdict, ranking)
        units[comparison_id].append(label)
        if kind == ComparisonKind.PAIRWISE:
            by_rater[name][comparison_id] = label
            if verdict in ("a", "b"):
                decisions[name].append(_decision(ranking, shown, lengths))
    pairwise = {cid: labels for cid, labels in units.items() if all(lb in ("a", "b", "tie", "both_bad") for lb in labels)}
    human_major = {cid: m for cid, labels in pairwise.items() if (m := agreement.majority([x for x in labels if x in ("a", "b")])) in ("a", "b")}
    judges = defaultdict(dict)
    for name, comparison_id, probability in Judgement.objects.filter(
            comparison__project=project, source=JudgementSource.TEACHER, probability__isnull=False).values_list(
            "judge_name", "comparison_id", "probability"):
        if probability != 0.5:
            judges[name][comparison_id] = "a" if probability > 0.5 else "b"
    kappas = agreement.pairwise_kappas(by_rater)
    finite = [k["kappa"] for k in kappas if k["kappa"] == k["kappa"]]
    return {
        "judgements": len(humans), "annotators": len({row[1] for row in humans}),
        "multi_rated": sum(len(v) >= 2 for v in units.values()),
        "alpha": agreement.krippendorff_alpha(units),
        "kappas": kappas, "mean_kappa": sum(finite) / len(finite) if finite else None,
        "judges": [{"name": name, **agreement.human_teacher_agreement(human_major, verdicts)} for name, verdicts in sorted(judges.items())],
        "biases": [{"annotator": name, "decisions": len(ds), **agreement.annotator_biases(ds)} for name, ds in sorted(decisions.items())],
    }


def _label(verdict, ranking) -> str:
    """services.human_label on the row's values."""
    if verdict == Verdict.RANKING:
        return "top:" + ",".join(str(x) for x in sorted(ranking[0])) if ranking else "none"
    return verdict


def _decision(ranking, shown_order, lengths) -> dict:
    chosen, other = ranking[0][0], ranking[1][0]
    lc, lo = lengths.get(chosen, 0), lengths.get(other, 0)
    return {"chosen_shown_first": bool(shown_order) and shown_order[0] == chosen,
            "chosen_longer": None if lc == lo else lc > lo}


def judgement_count(*, project) -> int:
    """The project's maintained judgement count (16 counter rows, migration 0012)."""
    return int(ProjectCounter.objects.filter(project=project).aggregate(n=Sum("judgements"))["n"] or 0)


def _stored(value):
    """NaN (κ over one label, α without pairs) is no JSON PostgreSQL takes: stored as None, shown as n/a."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def quality_refresh(*, project) -> QualityReport:
    """Computes the figures and stores them with the judgement count they reflect (the task's body)."""
    count = judgement_count(project=project)  # read first: a judgement arriving meanwhile leaves the report stale, not falsely fresh
    report = _stored(quality_report(project=project))
    stored, _ = QualityReport.objects.update_or_create(project=project, defaults={
        "report": report, "judgements": count, "computed_at": timezone.now()})
    return stored


def quality_stored(*, project) -> dict:
    """What the page shows: the stored report (or None), when it was computed, whether judgements
    arrived since (stale), and whether a refresh is on its way; a stale report asks for one."""
    stored = QualityReport.objects.filter(project=project).first()
    count = judgement_count(project=project)
    stale = stored is None or stored.judgements != count
    now = timezone.now()
    if stale and (stored is None or stored.requested_at is None or stored.requested_at < now - REFRESH_AGAIN_AFTER
                  or (stored.computed_at is not None and stored.requested_at < stored.computed_at)):
        QualityReport.objects.update_or_create(project=project, defaults={"requested_at": now})
        enqueue("workers.tasks.annotation.refresh_quality", project.pk)
    computed = stored is not None and stored.computed_at is not None
    return {"report": stored.report if computed else None, "computed_at": stored.computed_at if computed else None,
            "stale": stale, "refreshing": stale}
