"""What a frozen snapshot says about itself: which sources its pairs drew on (humans, each
teacher-judge identity, each imported dataset) and how far those sources agree on its pairs'
comparisons (Krippendorff's α and Cohen's κ among people, each judge against the human majority),
with the warnings the snapshot page shows when agreement is too low to train on. Plain data in
(the votes snapshots.collect_votes gathered), plain dicts out; stored on the snapshot at freeze.

Thresholds: κ and α below 0.4 are "fair" or worse on the Landis-Koch scale (two careless raters,
or a task people read differently); a judge that agrees with the human majority on fewer than 60%
of shared items is barely above chance for a/b verdicts. Either way the pairs are mostly noise."""
from collections import Counter, defaultdict

from webapp.annotation import agreement

LOW_AGREEMENT = 0.4
LOW_JUDGE_AGREEMENT = 0.6
MIN_SHARED = 5  # fewer shared items than this and a κ or α says little; shown, but not warned on


def vote_label(comparison: dict, vote: dict) -> str:
    """A vote as one nominal label: a/b for a decisive pairwise vote (a = position 0), tie, both_bad,
    or a k-way's top group."""
    if vote.get("both_bad"):
        return "both_bad"
    ranking = vote["ranking"]
    if comparison["kind"] != "pairwise":
        return "top:" + ",".join(str(x) for x in sorted(ranking[0])) if ranking else "none"
    if len(ranking) < 2:
        return "tie"
    return "a" if ranking[0] == [comparison["candidates"][0]] else "b"


def snapshot_sources(comparisons: list[dict], pairs: list[dict]) -> dict:
    """{"human": {"judgements", "annotators"}, "teacher": {judge identity: n}, "imported": {dataset: n}}
    counted over the judgements the pairs were made from (a vote on two pairs of a k-way counts once)."""
    votes = {v["judgement"]: v for c in comparisons for v in c["all_votes"]}
    used = {j for p in pairs for j in p["votes"]}
    counts, annotators = defaultdict(Counter), set()
    for judgement in sorted(used):
        vote = votes[judgement]
        if vote["origin"] == "human":
            counts["human"]["judgements"] += 1
            annotators.add(vote["rater"])
        else:
            counts[vote["origin"]][str(vote["rater"])] += 1
    out = {origin: dict(c) for origin, c in sorted(counts.items())}
    if "human" in out:
        out["human"]["annotators"] = len(annotators)
    return out


def snapshot_agreement(comparisons: list[dict], pairs: list[dict]) -> dict:
    """How far the sources behind the pairs agree, over every vote (all sources, whatever the source
    filter took) on the comparisons in scope: the pairs' own comparisons plus every other trainable
    comparison a person behind the pairs judged, disputed ones included (settling keeps disagreements
    out of the pairs, so the pairs alone would always look unanimous). Human α and per-pair κ, each
    judge vs the human majority, and the warnings."""
    used = {p["comparison"] for p in pairs}
    votes = {j for p in pairs for j in p["votes"]}
    people = {v["rater"] for c in comparisons for v in c["all_votes"] if v["origin"] == "human" and v["judgement"] in votes}
    units, by_rater, majority, judges = {}, defaultdict(dict), {}, defaultdict(dict)
    for comparison in comparisons:
        if comparison["id"] not in used and not any(v["rater"] in people for v in comparison["all_votes"]
                                                    if v["origin"] == "human"):
            continue
        human = [v for v in comparison["all_votes"] if v["origin"] == "human" and not v.get("adjudication")]
        labels = [vote_label(comparison, v) for v in human]
        units[comparison["id"]] = labels
        if comparison["kind"] == "pairwise":
            for vote, label in zip(human, labels):
                by_rater[vote["rater"]][comparison["id"]] = label
            top = agreement.majority([x for x in labels if x in ("a", "b")])
            if top in ("a", "b"):
                majority[comparison["id"]] = top
            for vote in comparison["all_votes"]:
                if vote["origin"] != "human" and vote.get("probability") not in (None, 0.5):
                    name = vote["rater"] if vote["origin"] == "teacher" else f"{vote['origin']}:{vote['rater']}"
                    judges[name][comparison["id"]] = "a" if vote["probability"] > 0.5 else "b"
    multi = {u: labels for u, labels in units.items() if len(labels) >= 2}
    kappas = agreement.pairwise_kappas(by_rater)
    finite = [k["kappa"] for k in kappas if k["kappa"] == k["kappa"]]
    alpha = agreement.krippendorff_alpha(multi) if multi else None
    report = {"multi_rated": len(multi), "alpha": None if alpha is None or alpha != alpha else alpha,
              "mean_kappa": sum(finite) / len(finite) if finite else None, "kappa_pairs": len(finite),
              "judges": [{"name": name, **_finite(agreement.human_teacher_agreement(majority, verdicts))}
                         for name, verdicts in sorted(judges.items())]}
    report["warnings"] = _warnings(report)
    return report


def _finite(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _warnings(report: dict) -> list[str]:
    warnings = []
    if report["multi_rated"] >= MIN_SHARED and report["alpha"] is not None and report["alpha"] < LOW_AGREEMENT:
        warnings.append(f"Low agreement among annotators: Krippendorff's α = {report['alpha']:.2f} over "
                        f"{report['multi_rated']} comparisons judged by two or more people (below {LOW_AGREEMENT}).")
    if report["mean_kappa"] is not None and report["multi_rated"] >= MIN_SHARED and report["mean_kappa"] < LOW_AGREEMENT:
        warnings.append(f"Low agreement between annotator pairs: mean Cohen's κ = {report['mean_kappa']:.2f} "
                        f"(below {LOW_AGREEMENT}).")
    for judge in report["judges"]:
        if judge["n"] >= MIN_SHARED and judge["agreement"] is not None and judge["agreement"] < LOW_JUDGE_AGREEMENT:
            warnings.append(f"The judge {judge['name']} agrees with the human majority on only "
                            f"{100 * judge['agreement']:.0f}% of {judge['n']} shared comparisons.")
    return warnings


# Streaming forms of the above for a freeze that reads the comparisons a chunk at a time
# (snapshots.snapshot_freeze): the same figures, from counts that add up chunk by chunk.

class IdSet:
    """A set of (positive integer) ids as a bitmap: a million comparison ids in 125 kB."""

    def __init__(self):
        self.bits = bytearray()

    def add_all(self, ids) -> None:
        for i in ids:
            if i // 8 >= len(self.bits):
                self.bits.extend(bytes(max(i // 8 + 1 - len(self.bits), len(self.bits))))
            self.bits[i // 8] |= 1 << (i % 8)

    def __contains__(self, i) -> bool:
        return i // 8 < len(self.bits) and bool(self.bits[i // 8] & (1 << (i % 8)))


class SourceTally:
    """snapshot_sources and the freeze's per-source vote counts, chunk by chunk."""

    def __init__(self):
        self.counts, self.annotators = defaultdict(Counter), set()
        self.votes = {"human": 0, "teacher": 0, "imported": 0}

    def add(self, votes, vote_counts) -> None:
        """votes: the pairs' judgements as (id, origin, rater), each once; vote_counts: votes per
        source on the usable comparisons."""
        for source, n in vote_counts.items():
            self.votes[source] += n
        for _, origin, rater in votes:
            if origin == "human":
                self.counts["human"]["judgements"] += 1
                self.annotators.add(rater)
            else:
                self.counts[origin][str(rater)] += 1

    def vote_counts(self) -> dict:
        return dict(self.votes)

    def report(self) -> dict:
        out = {origin: dict(c) for origin, c in sorted(self.counts.items())}
        if "human" in out:
            out["human"]["annotators"] = len(self.annotators)
        return out


class AgreementTally:
    """snapshot_agreement from counts: Krippendorff's coincidence matrix, a confusion table per pair
    of annotators and per judge (against the human majority). Same scope rule and figures; fed the
    trainable comparisons chunk by chunk, after the pairs are known (used, people)."""

    def __init__(self):
        self.multi, self.coincidence = 0, defaultdict(float)
        self.pair_tables, self.judge_tables = defaultdict(Counter), defaultdict(Counter)

    def add(self, comparisons: list[dict], *, used, people: set) -> None:
        for comparison in comparisons:
            if comparison["id"] not in used and not any(v["rater"] in people for v in comparison["all_votes"] if v["origin"] == "human"):
                continue
            human = [v for v in comparison["all_votes"] if v["origin"] == "human" and not v.get("adjudication")]
            labels = [vote_label(comparison, v) for v in human]
            m = len(labels)
            if m >= 2:
                self.multi += 1
                for i in range(m):  # krippendorff_alpha's loop, unit by unit in the same order
                    for j in range(i + 1, m):
                        self.coincidence[labels[i], labels[j]] += 1 / (m - 1)
                        self.coincidence[labels[j], labels[i]] += 1 / (m - 1)
            if comparison["kind"] != "pairwise":
                continue
            rated = sorted(((v["rater"], label) for v, label in zip(human, labels)), key=lambda rl: str(rl[0]))
            for i, (r1, l1) in enumerate(rated):
                for r2, l2 in rated[i + 1:]:
                    self.pair_tables[r1, r2][l1, l2] += 1
            top = agreement.majority([x for x in labels if x in ("a", "b")])
            for vote in comparison["all_votes"]:
                if vote["origin"] != "human" and vote.get("probability") not in (None, 0.5):
                    name = vote["rater"] if vote["origin"] == "teacher" else f"{vote['origin']}:{vote['rater']}"
                    table = self.judge_tables[name]  # listed even with nothing shared (n = 0), as snapshot_agreement does
                    if top in ("a", "b"):
                        table[top, "a" if vote["probability"] > 0.5 else "b"] += 1

    def _alpha(self):
        n_c = defaultdict(float)
        for (c, _), value in self.coincidence.items():
            n_c[c] += value
        if not self.multi or len(n_c) < 2:
            return None
        n = sum(n_c.values())
        observed = sum(value for (c, k), value in self.coincidence.items() if c != k)
        expected = (n * n - sum(v * v for v in n_c.values())) / (n - 1)
        return None if expected == 0 else 1.0 - observed / expected

    def report(self) -> dict:
        kappas = [_kappa(table) for _, table in sorted(self.pair_tables.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))
                  if sum(table.values()) >= 2]
        finite = [k for k in kappas if k == k]
        judges = []
        for name, table in sorted(self.judge_tables.items()):
            n = sum(table.values())
            row = {"n": 0, "agreement": None, "kappa": None} if not n else \
                {"n": n, "agreement": sum(v for (h, t), v in table.items() if h == t) / n, "kappa": _kappa(table) if n >= 2 else float("nan")}
            judges.append({"name": name, **_finite(row)})
        report = {"multi_rated": self.multi, "alpha": self._alpha(), "mean_kappa": sum(finite) / len(finite) if finite else None,
                  "kappa_pairs": len(finite), "judges": judges}
        report["warnings"] = _warnings(report)
        return report


def _kappa(table: Counter) -> float:
    """agreement.cohen_kappa from a confusion table {(label a, label b): count}: the same sums."""
    n = sum(table.values())
    observed = sum(v for (x, y), v in table.items() if x == y) / n
    count_a, count_b = Counter(), Counter()
    for (x, y), v in table.items():
        count_a[x] += v
        count_b[y] += v
    expected = sum(count_a[label] * count_b[label] for label in count_a) / n**2
    return float("nan") if expected == 1.0 else (observed - expected) / (1.0 - expected)
