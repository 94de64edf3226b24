"""ml/agreement.py, the one κ/α implementation (standard library only, shared with the web process):
hand-worked and published values, and Krippendorff's α against the krippendorff package on random
tables with missing ratings."""
import ast
import math
import random
import sys
from pathlib import Path

import pytest

from ml.agreement import cohen_kappa, krippendorff_alpha, units_from_table


def test_cohen_kappa_textbook_example():
    # Wikipedia's example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no. p_o = 0.7, p_e = 0.5 -> 0.4.
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["y", "y"], ["y", "y"]))
    with pytest.raises(ValueError):
        cohen_kappa(["y"], ["y", "n"])


def test_krippendorff_alpha_published_examples():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example with
    # 4 observers, 12 units and missing values: alpha = 0.743.
    n = None
    ratings = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
               [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
               [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
               [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert krippendorff_alpha(units_from_table(ratings)) == pytest.approx(0.743, abs=5e-4)
    # Same paper, two observers on 10 binary units: alpha = 0.095; string labels work the same.
    binary = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
    assert krippendorff_alpha(units_from_table(binary)) == pytest.approx(0.095, abs=5e-4)
    as_text = [["a" if x else "b" for x in row] for row in binary]
    assert krippendorff_alpha(units_from_table(as_text)) == pytest.approx(krippendorff_alpha(units_from_table(binary)))


def test_krippendorff_alpha_hand_worked():
    assert krippendorff_alpha({1: ["a", "a"], 2: ["b", "b"]}) == pytest.approx(1.0)
    # Two units, each split a/b: coincidences o_ab = o_ba = 2, n = 4, n_a = n_b = 2;
    # D_o = 4/4 = 1, D_e = (4*4 - 8) / (4 * 3) = 2/3 -> α = 1 - 1 / (2/3) = -0.5
    assert krippendorff_alpha({1: ["a", "b"], 2: ["a", "b"]}) == pytest.approx(-0.5)
    assert math.isnan(krippendorff_alpha({1: ["a", "a"], 2: ["a"]}))  # one value only


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_matches_the_krippendorff_package(seed):
    import krippendorff

    rng = random.Random(seed)
    values = ["a", "b", "tie"]
    table = [[rng.choice(values + [None]) for _ in range(30)] for _ in range(4)]
    codes = [[float("nan") if x is None else float(values.index(x)) for x in row] for row in table]
    expected = krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
    assert krippendorff_alpha(units_from_table(table)) == pytest.approx(expected, abs=1e-9)


def test_standard_library_only():
    tree = ast.parse(Path("ml/agreement.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
              {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= set(sys.stdlib_module_names), modules
