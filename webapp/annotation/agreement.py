"""Agreement and annotator quality for the quality pages: nominal Cohen's κ per annotator pair,
Krippendorff's α over everyone, human-vs-teacher agreement, and each annotator's position and length
bias. κ and α themselves come from ml/agreement.py, their one implementation (standard library only,
so the web process may import it, as it does ml.config)."""
import math
from collections import Counter
from itertools import combinations

from ml.agreement import cohen_kappa, krippendorff_alpha

__all__ = ["cohen_kappa", "krippendorff_alpha", "pairwise_kappas", "share_with_ci", "annotator_biases",
           "human_teacher_agreement", "majority"]


def pairwise_kappas(labels_by_rater: dict) -> list[dict]:
    """κ for every pair of raters over the units both labelled (pairs sharing < 2 units skipped)."""
    rows = []
    for r1, r2 in combinations(sorted(labels_by_rater, key=str), 2):
        shared = sorted(set(labels_by_rater[r1]) & set(labels_by_rater[r2]))
        if len(shared) < 2:
            continue
        kappa = cohen_kappa([labels_by_rater[r1][u] for u in shared], [labels_by_rater[r2][u] for u in shared])
        rows.append({"a": r1, "b": r2, "n": len(shared), "kappa": kappa})
    return rows


def share_with_ci(hits: int, n: int) -> dict:
    """A proportion with its 95% Wilson interval and the two-sided z-test against 0.5 (no bias)."""
    if n == 0:
        return {"n": 0, "share": None, "low": None, "high": None, "p_value": None}
    p, z = hits / n, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    z_stat = (hits - 0.5 * n) / math.sqrt(0.25 * n)
    return {"n": n, "share": p, "low": centre - half, "high": centre + half,
            "p_value": math.erfc(abs(z_stat) / math.sqrt(2))}


def annotator_biases(decisions: list[dict]) -> dict:
    """decisions: decisive pairwise judgements of one annotator, each {chosen_shown_first: bool,
    chosen_longer: bool | None (None when both are equally long)}. Position bias = share choosing the
    candidate shown first; length bias = share choosing the longer one; 0.5 is unbiased for both."""
    first = sum(d["chosen_shown_first"] for d in decisions)
    sized = [d for d in decisions if d["chosen_longer"] is not None]
    return {"position": share_with_ci(first, len(decisions)),
            "length": share_with_ci(sum(d["chosen_longer"] for d in sized), len(sized))}


def human_teacher_agreement(human: dict, teacher: dict) -> dict:
    """human: unit -> majority label among a/b; teacher: unit -> a/b. Share agreeing and κ on shared units."""
    shared = sorted(set(human) & set(teacher))
    if not shared:
        return {"n": 0, "agreement": None, "kappa": None}
    h, t = [human[u] for u in shared], [teacher[u] for u in shared]
    kappa = cohen_kappa(h, t) if len(shared) >= 2 else float("nan")
    return {"n": len(shared), "agreement": sum(x == y for x, y in zip(h, t)) / len(shared), "kappa": kappa}


def majority(labels: list):
    """The most common label, or None on a tie for first place."""
    top = Counter(labels).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


