"""The project quality page's numbers: inter-annotator agreement (Cohen's κ per pair of
annotators on pairwise items, Krippendorff's α over all items), agreement between the human
majority and each teacher judge, and each annotator's position and length bias. Reads only."""
from collections import defaultdict

from django.db.models.functions import Length

from webapp.annotation import agreement
from webapp.annotation.models import ComparisonItem, ComparisonKind, Judgement, JudgementSource
from webapp.annotation.services import human_label


def quality_report(*, project) -> dict:
    humans = list(Judgement.objects.filter(comparison__project=project, source=JudgementSource.HUMAN, is_adjudication=False)
                  .select_related("annotator", "comparison").order_by("id"))
    lengths = dict(ComparisonItem.objects.filter(comparison__project=project).annotate(n=Length("generation__text"))
                   .values_list("generation_id", "n"))
    by_rater, units, decisions = defaultdict(dict), defaultdict(list), defaultdict(list)
    for j in humans:
        name, label = j.annotator.username, human_label(j)
        units[j.comparison_id].append(label)
        if j.comparison.kind == ComparisonKind.PAIRWISE:
            by_rater[name][j.comparison_id] = label
            if j.verdict in ("a", "b"):
                decisions[name].append(_decision(j, lengths))
    pairwise = {cid: labels for cid, labels in units.items() if all(lb in ("a", "b", "tie", "both_bad") for lb in labels)}
    human_major = {cid: m for cid, labels in pairwise.items() if (m := agreement.majority([x for x in labels if x in ("a", "b")])) in ("a", "b")}
    judges = defaultdict(dict)
    for j in Judgement.objects.filter(comparison__project=project, source=JudgementSource.TEACHER, probability__isnull=False):
        if j.probability != 0.5:
            judges[j.judge_name][j.comparison_id] = "a" if j.probability > 0.5 else "b"
    kappas = agreement.pairwise_kappas(by_rater)
    finite = [k["kappa"] for k in kappas if k["kappa"] == k["kappa"]]
    return {
        "judgements": len(humans), "annotators": len({j.annotator_id for j in humans}),
        "multi_rated": sum(len(v) >= 2 for v in units.values()),
        "alpha": agreement.krippendorff_alpha(units),
        "kappas": kappas, "mean_kappa": sum(finite) / len(finite) if finite else None,
        "judges": [{"name": name, **agreement.human_teacher_agreement(human_major, verdicts)} for name, verdicts in sorted(judges.items())],
        "biases": [{"annotator": name, "decisions": len(ds), **agreement.annotator_biases(ds)} for name, ds in sorted(decisions.items())],
    }


def _decision(judgement, lengths) -> dict:
    chosen = judgement.ranking[0][0]
    other = judgement.ranking[1][0]
    lc, lo = lengths.get(chosen, 0), lengths.get(other, 0)
    return {"chosen_shown_first": bool(judgement.shown_order) and judgement.shown_order[0] == chosen,
            "chosen_longer": None if lc == lo else lc > lo}
