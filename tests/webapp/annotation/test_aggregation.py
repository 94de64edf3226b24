"""Aggregation rules on plain votes: majority, agreement-weighted, tie policy, k-way Borda pairs
and adjudication overriding everything."""
from webapp.annotation.aggregation import aggregate, borda


def human(j, rater, ranking, both_bad=False, adjudication=False):
    return {"judgement": j, "source": "human", "rater": rater, "ranking": ranking, "both_bad": both_bad, "adjudication": adjudication}


def teacher(j, p):
    a, b = 1, 2
    return {"judgement": j, "source": "teacher", "rater": "t", "probability": p,
            "ranking": [[a], [b]] if p > 0.5 else [[b], [a]] if p < 0.5 else [[a, b]]}


def comparison(votes, cid=1, kind="pairwise", candidates=(1, 2), teacher_votes=()):
    return {"id": cid, "prompt_id": 7, "kind": kind, "candidates": list(candidates), "votes": votes, "teacher_votes": list(teacher_votes)}


def test_majority_two_to_one():
    pairs, stats = aggregate([comparison([human(1, "x", [[1], [2]]), human(2, "y", [[1], [2]]), human(3, "z", [[2], [1]])])])
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(1, 2)]
    assert pairs[0]["weight"] == round(2 / 3, 6) and pairs[0]["votes"] == [1, 2, 3] and stats["pairs"] == 1


def test_tie_dropped_or_broken_by_teacher():
    tied = comparison([human(1, "x", [[1], [2]]), human(2, "y", [[2], [1]])], teacher_votes=[teacher(9, 0.2)])
    assert aggregate([tied])[0] == []
    pairs, stats = aggregate([tied], tie_policy="teacher")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(2, 1)] and stats["ties_broken_by_teacher"] == 1


def test_both_bad_majority_gives_no_pair():
    votes = [human(1, "x", [[1, 2]], both_bad=True), human(2, "y", [[1, 2]], both_bad=True), human(3, "z", [[1], [2]])]
    pairs, stats = aggregate([comparison(votes)])
    assert pairs == [] and stats["both_bad"] == 1


def test_adjudication_is_the_only_vote():
    votes = [human(1, "x", [[1], [2]]), human(2, "y", [[1], [2]]), human(3, "boss", [[2], [1]], adjudication=True)]
    pairs, _ = aggregate([comparison(votes)])
    assert [(p["chosen"], p["rejected"], p["weight"], p["votes"]) for p in pairs] == [(2, 1, 1.0, [3])]


def test_agreement_weighted_trusts_the_consistent_rater():
    # x and y agree on items 1-3; z disagrees with them there. On item 4, x (reliable) and z split.
    items = [comparison([human(10 * i + 1, "x", [[1], [2]]), human(10 * i + 2, "y", [[1], [2]]), human(10 * i + 3, "z", [[2], [1]])], cid=i)
             for i in (1, 2, 3)]
    items.append(comparison([human(41, "x", [[1], [2]]), human(43, "z", [[2], [1]])], cid=4))
    assert [p for p in aggregate(items)[0] if p["comparison"] == 4] == []  # majority: a 1-1 tie
    weighted = [p for p in aggregate(items, rule="agreement_weighted")[0] if p["comparison"] == 4]
    assert [(p["chosen"], p["rejected"]) for p in weighted] == [(1, 2)]


def test_kway_borda_pairs():
    assert borda([[5], [6, 7], [8]]) == {5: 3, 6: 1, 7: 1, 8: 0}
    votes = [human(1, "x", [[5], [6, 7], [8]]), human(2, "y", [[5], [6], [7], [8]])]
    pairs, _ = aggregate([comparison(votes, kind="kway", candidates=(5, 6, 7, 8))])
    got = {(p["chosen"], p["rejected"]) for p in pairs}
    assert got == {(5, 6), (5, 7), (5, 8), (6, 7), (6, 8), (7, 8)}
    assert all(0 < p["weight"] <= 1 for p in pairs)
