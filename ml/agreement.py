"""Chance-corrected agreement between raters on nominal labels: Cohen's κ for two raters and
Krippendorff's α for any number with missing ratings. The one implementation of both, in the
standard library only, so the web process (annotator quality pages, snapshot quality) imports it
as it imports ml.config, without numpy or torch; ml.metrics' evaluation code uses it too."""
from collections import Counter, defaultdict
from itertools import combinations
from typing import Hashable, Mapping, Sequence


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's κ for two raters' labels on the same items: (p_o − p_e) / (1 − p_e), with p_o the
    share of items they agree on and p_e = Σ_label (n_a(label) · n_b(label)) / n². NaN when chance
    agreement is certain (both used one and the same label throughout)."""
    if len(a) != len(b):
        raise ValueError(f"raters labelled different numbers of items ({len(a)} vs {len(b)})")
    if not a:
        raise ValueError("cohen_kappa needs at least one item")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[label] * count_b[label] for label in count_a) / n**2
    return float("nan") if expected == 1.0 else (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Hashable]]) -> float:
    """Nominal α = 1 − D_o / D_e (Krippendorff 2011). `units` maps each unit to the labels it
    received, one per rater who rated it; units with fewer than two labels carry no pairing
    information and are left out. From the coincidence matrix o_ck = Σ_u (pairs (c, k) in u) / (m_u − 1),
    n_c = Σ_k o_ck and n = Σ_c n_c: D_o = Σ_{c≠k} o_ck, D_e = (n² − Σ_c n_c²) / (n − 1).
    NaN when only one value occurs (no disagreement is possible)."""
    coincidence: dict = defaultdict(float)
    for labels in units.values():
        m = len(labels)
        if m < 2:
            continue
        for i, j in combinations(range(m), 2):  # each ordered pair (c, k) and (k, c), weighted 1/(m−1)
            coincidence[labels[i], labels[j]] += 1 / (m - 1)
            coincidence[labels[j], labels[i]] += 1 / (m - 1)
    n_c: dict = defaultdict(float)
    for (c, _), value in coincidence.items():
        n_c[c] += value
    n = sum(n_c.values())
    if len(n_c) < 2:
        return float("nan")
    observed = sum(value for (c, k), value in coincidence.items() if c != k)
    expected = (n * n - sum(v * v for v in n_c.values())) / (n - 1)
    return float("nan") if expected == 0 else 1.0 - observed / expected


def units_from_table(ratings: Sequence[Sequence]) -> dict:
    """A raters × units table (None, or a float NaN, where a rater did not rate a unit) as the
    unit → labels mapping krippendorff_alpha takes."""
    units: dict = defaultdict(list)
    for row in ratings:
        for unit, label in enumerate(row):
            if label is not None and label == label:  # label != label: NaN
                units[unit].append(label)
    return dict(units)
