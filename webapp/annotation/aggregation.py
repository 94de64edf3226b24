"""From votes to chosen/rejected pairs, on plain data (no ORM), so the rules are easy to read and
test. A vote is one judgement: a ranking of generation ids (groups, best first), its source and
rater, and for a judge its P(a ≻ b). Rules: `majority` (one vote each) or `agreement_weighted`
(a person's vote counts by how often they agree with each other person on shared items; a judge's by its confidence
|2p − 1|). Pairwise items give one pair; k-way rankings give every pair whose Borda scores differ.
An adjudication, where present, is the only vote that counts. Tie policy: `drop` (no pair), or
`teacher` (a tie among the votes is broken by the teacher-judge's verdict when it has one)."""
from collections import defaultdict

RULES = ("majority", "agreement_weighted")
TIE_POLICIES = ("drop", "teacher")
SOURCE_FILTERS = ("humans", "teacher", "imported", "both")  # "both": every source (humans, teacher-judge, imported)


def borda(ranking: list[list[int]]) -> dict:
    """Each candidate scores the number of candidates ranked strictly below it."""
    scores, below = {}, sum(len(g) for g in ranking)
    for group in ranking:
        below -= len(group)
        for gid in group:
            scores[gid] = below
    return scores


def reliability(comparisons: list[dict]) -> dict:
    """Per human rater: (agreements + 1) / (pairings + 2) over every pairing with another rater on a
    comparison both judged (Laplace-smoothed, so someone with no overlap yet starts at 0.5)."""
    agree, total = defaultdict(int), defaultdict(int)
    reliability_tally(comparisons, agree, total)
    return {r: (agree[r] + 1) / (total[r] + 2) for r in total}


def reliability_tally(comparisons: list[dict], agree: dict, total: dict) -> None:
    """reliability's counts, added to `agree` and `total` (so a stream can tally chunk by chunk)."""
    for comparison in comparisons:
        humans = [v for v in comparison["votes"] if v["source"] == "human" and not v.get("adjudication")]
        labels = [(tuple(map(tuple, v["ranking"])), bool(v.get("both_bad"))) for v in humans]
        for i, vote in enumerate(humans):
            for j in range(len(humans)):
                if i != j:
                    total[vote["rater"]] += 1
                    agree[vote["rater"]] += labels[i] == labels[j]


def _weight(vote: dict, rule: str, weights: dict) -> float:
    if rule == "majority" or vote.get("adjudication"):
        return 1.0
    if vote["source"] == "human":
        return weights.get(vote["rater"], 0.5)
    p = vote.get("probability")
    return abs(2 * p - 1) if p is not None else 0.5


def _scores(votes: list[dict], rule: str, weights: dict):
    """Weighted Borda scores per candidate; both-bad votes count toward nobody (but count in the total)."""
    scores, total, both_bad = defaultdict(float), 0.0, 0.0
    for vote in votes:
        w = _weight(vote, rule, weights)
        total += w
        if vote.get("both_bad"):
            both_bad += w
            continue
        for gid, s in borda(vote["ranking"]).items():
            scores[gid] += w * s
    return scores, total, both_bad


def aggregate(comparisons: list[dict], *, rule: str = "majority", tie_policy: str = "drop", weights: dict | None = None) -> tuple[list[dict], dict]:
    """comparisons: [{id, prompt_id, kind, candidates: [gid...], votes: [vote...]}] with votes
    already filtered by source. Returns (pairs, stats); a pair is {comparison, prompt_id, chosen,
    rejected, weight, votes (judgement ids)}, weight in (0, 1] = the winner's share of the vote.
    weights: the raters' reliability when the comparisons are one chunk of a larger set (the
    agreement_weighted rule needs it over the whole set); computed from `comparisons` otherwise."""
    if rule not in RULES or tie_policy not in TIE_POLICIES:
        raise ValueError(f"rule must be one of {RULES} and tie_policy one of {TIE_POLICIES}")
    if weights is None:
        weights = reliability(comparisons) if rule == "agreement_weighted" else {}
    pairs, stats = [], defaultdict(int)
    for comparison in comparisons:
        votes = [v for v in comparison["votes"] if v.get("adjudication")] or comparison["votes"]
        if not votes:
            continue
        stats["comparisons_used"] += 1
        scores, total, both_bad = _scores(votes, rule, weights)
        made = _pairs_from_scores(comparison, scores, total, both_bad, votes)
        if not made and tie_policy == "teacher":
            teacher = [v for v in comparison.get("teacher_votes", []) if v.get("probability") not in (None, 0.5)]
            if teacher:
                t_scores, t_total, _ = _scores(teacher[:1], "agreement_weighted", {})
                made = [dict(p, weight=min(p["weight"], 0.5), tie_broken_by="teacher")
                        for p in _pairs_from_scores(comparison, t_scores, t_total, 0.0, teacher[:1])]
                stats["ties_broken_by_teacher"] += bool(made)
        if not made:
            stats["both_bad" if both_bad * 2 > total else "ties_dropped"] += 1
        pairs += made
    stats["pairs"] = len(pairs)
    return pairs, dict(stats)


def _pairs_from_scores(comparison, scores, total, both_bad, votes) -> list[dict]:
    if total == 0 or both_bad * 2 > total:  # most of the say was "both bad": nothing is chosen
        return []
    candidates = comparison["candidates"]
    top = max(scores.get(g, 0.0) for g in candidates)
    if comparison["kind"] == "pairwise":
        a, b = candidates
        sa, sb = scores.get(a, 0.0), scores.get(b, 0.0)
        if sa == sb:
            return []
        chosen, rejected = (a, b) if sa > sb else (b, a)
        return [_pair(comparison, chosen, rejected, max(sa, sb) / total, votes)]
    ordered = sorted(candidates, key=lambda g: -scores.get(g, 0.0))
    span = top * 1.0 or 1.0
    return [_pair(comparison, hi, lo, (scores.get(hi, 0.0) - scores.get(lo, 0.0)) / span, votes)
            for i, hi in enumerate(ordered) for lo in ordered[i + 1:] if scores.get(hi, 0.0) > scores.get(lo, 0.0)]


def _pair(comparison, chosen, rejected, weight, votes) -> dict:
    return {"comparison": comparison["id"], "prompt_id": comparison["prompt_id"], "chosen": chosen, "rejected": rejected,
            "weight": round(min(max(weight, 1e-6), 1.0), 6), "votes": sorted(v["judgement"] for v in votes)}
