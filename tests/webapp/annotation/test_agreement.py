"""The web side's own κ and α (numpy only) against hand-worked values and against ml.metrics and
the krippendorff package, which the web process may not import."""
import math

import pytest

from ml import metrics
from webapp.annotation import agreement


def test_kappa_hand_worked():
    # 10 items, 7 agreements (p_o = 0.7); a says x 5 times, b says x 6 times:
    # p_e = (5*6 + 5*4) / 100 = 0.5, κ = (0.7 - 0.5) / 0.5 = 0.4
    a = list("xxxxxyyyyy")
    b = list("xxxxyyyyxx")
    assert sum(x == y for x, y in zip(a, b)) == 7
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.4)
    assert agreement.cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa(a, b))
    assert math.isnan(agreement.cohen_kappa(["x", "x"], ["x", "x"]))


@pytest.mark.parametrize("seed", range(5))
def test_alpha_matches_ml_metrics(seed):
    import random

    rng = random.Random(seed)
    raters, units = 4, 30
    table = [[rng.choice(["a", "b", "tie", None]) for _ in range(units)] for _ in range(raters)]
    by_unit = {u: [row[u] for row in table if row[u] is not None] for u in range(units)}
    expected = metrics.krippendorff_alpha(table)
    assert agreement.krippendorff_alpha(by_unit) == pytest.approx(expected, abs=1e-9)


def test_alpha_hand_worked_perfect_and_opposed():
    assert agreement.krippendorff_alpha({1: ["a", "a"], 2: ["b", "b"]}) == pytest.approx(1.0)
    # Two units, each split a/b: coincidences o_ab = o_ba = 2, n = 4, n_a = n_b = 2;
    # D_o = 4/4 = 1, D_e = (4*4 - 8) / (4 * 3) = 2/3 -> α = 1 - 1 / (2/3) = -0.5
    assert agreement.krippendorff_alpha({1: ["a", "b"], 2: ["a", "b"]}) == pytest.approx(-0.5)


def test_bias_shares_and_ci():
    decisions = [{"chosen_shown_first": True, "chosen_longer": True}] * 9 + [{"chosen_shown_first": False, "chosen_longer": None}]
    report = agreement.annotator_biases(decisions)
    assert report["position"]["share"] == pytest.approx(0.9) and report["position"]["n"] == 10
    assert report["position"]["low"] < 0.9 < report["position"]["high"] and report["position"]["p_value"] < 0.05
    assert report["length"]["n"] == 9 and report["length"]["share"] == 1.0
