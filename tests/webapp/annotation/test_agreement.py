"""The quality pages' agreement numbers: κ and α are ml/agreement.py's (one implementation, which the
web process may import: standard library only), checked here on the web side's label shapes."""
import math

import pytest

import ml.agreement
from webapp.annotation import agreement


def test_one_implementation_of_kappa_and_alpha():
    assert agreement.cohen_kappa is ml.agreement.cohen_kappa
    assert agreement.krippendorff_alpha is ml.agreement.krippendorff_alpha


def test_pairwise_kappas_and_human_teacher_agreement():
    # a/b agree on 7 of 10 items; a says x 5 times, b 6 times: p_e = (5*6 + 5*4)/100 = 0.5, κ = 0.4
    a, b = list("xxxxxyyyyy"), list("xxxxyyyyxx")
    rows = agreement.pairwise_kappas({"ann": dict(enumerate(a)), "bea": dict(enumerate(b)), "solo": {99: "x"}})
    assert rows == [{"a": "ann", "b": "bea", "n": 10, "kappa": pytest.approx(0.4)}]
    report = agreement.human_teacher_agreement(dict(enumerate(a)), dict(enumerate(b)))
    assert report["n"] == 10 and report["agreement"] == pytest.approx(0.7) and report["kappa"] == pytest.approx(0.4)
    assert math.isnan(agreement.krippendorff_alpha({1: ["a", "a"]}))


def test_bias_shares_and_ci():
    decisions = [{"chosen_shown_first": True, "chosen_longer": True}] * 9 + [{"chosen_shown_first": False, "chosen_longer": None}]
    report = agreement.annotator_biases(decisions)
    assert report["position"]["share"] == pytest.approx(0.9) and report["position"]["n"] == 10
    assert report["position"]["low"] < 0.9 < report["position"]["high"] and report["position"]["p_value"] < 0.05
    assert report["length"]["n"] == 9 and report["length"]["share"] == 1.0
