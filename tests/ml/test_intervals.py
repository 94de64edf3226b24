"""ml/intervals.py against hand-worked values, and the coverage simulation issue 21 asks for: the
win-rate interval (ml.metrics.win_rate, continuity-corrected Wilson) covers the true rate at least
93% of the time at n in {16, 32, 100, 500} and p in {0.02, 0.5, 0.98}.

Observed coverage of this simulation (2,000 seeded samples per cell; the exact binomial coverage
of the same interval is within 0.01 of these and never below 0.955):
    n=16:  p=0.02 0.961, p=0.5 0.980, p=0.98 0.964      n=32:  0.971, 0.983, 0.975
    n=100: 0.987, 0.969, 0.985                          n=500: 0.971, 0.958, 0.965
benchmarks/bench_teacher_hacking.py --simulate prints these beside the percentile bootstrap's."""
import math

import numpy as np
import pytest

from ml.intervals import (critical_z, drop_z, min_detectable_drop, sample_size_for_drop, stretches,
                          wilson_interval)
from ml.metrics import win_rate


def test_wilson_interval_hand_worked():
    # 5 of 10, z = 1.96: (2*5 + z^2 -/+ (z*sqrt(z^2 - 0.1 + 10*0.25*4 -/+ 0) + 1)) / (2*(10 + z^2))
    z = 1.959964
    half = z * math.sqrt(z * z - 0.1 + 10) + 1
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx((10 + z * z - half) / (2 * (10 + z * z)), abs=1e-6)
    assert high == pytest.approx((10 + z * z + half) / (2 * (10 + z * z)), abs=1e-6)
    assert (round(low, 4), round(high, 4)) == (0.2014, 0.7986)


def test_wilson_interval_never_collapses_at_the_edges():
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.3445, abs=1e-4))
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.6555, abs=1e-4)
    assert wilson_interval(0.5, 1) == (0.0, 1.0)  # one tie: nothing known
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_drop_z_and_bonferroni_hand_worked():
    assert drop_z(0.6, 100, 0.4, 100) == pytest.approx(0.2 / math.sqrt(0.25 * 2 / 100))  # 2.828
    assert drop_z(0.4, 100, 0.6, 100) < 0 and drop_z(1.0, 10, 1.0, 10) == 0.0
    assert stretches(5) == 10 and stretches(1) == 0
    assert critical_z(10) == pytest.approx(2.5758, abs=1e-4)  # one-sided 0.05 / 10
    assert critical_z(1) == pytest.approx(1.6449, abs=1e-4)


def test_min_detectable_drop_hand_worked():
    # n = 100 per checkpoint, 5 evaluations (10 stretches): (2.5758 + 0.8416) * sqrt(2 * 0.25 / 100)
    assert min_detectable_drop(100) == pytest.approx(3.4174 * 0.070711, abs=1e-4)  # 0.2417
    assert min_detectable_drop(32) == pytest.approx(0.4272, abs=1e-4)
    assert sample_size_for_drop(0.10) == 584  # ceil(3.4174^2 * 0.5 / 0.01)
    assert min_detectable_drop(584) <= 0.10 < min_detectable_drop(583)
    assert min_detectable_drop(100, rate=0.9) < min_detectable_drop(100)  # 0.5 is the worst case


@pytest.mark.parametrize("n", [16, 32, 100, 500])
def test_win_rate_interval_covers_at_least_93_percent(n):
    rng = np.random.default_rng(n)
    for p in (0.02, 0.5, 0.98):
        covered = 0
        for _ in range(2000):
            wins = int(rng.binomial(n, p))
            result = win_rate([1.0] * wins + [0.0] * (n - wins))
            covered += result.low <= p <= result.high
        assert covered / 2000 >= 0.93, (n, p, covered / 2000)


def test_win_rate_interval_with_ties_stays_honest():
    # 40% ties, 35% wins, 25% losses: true win rate 0.35 + 0.2 = 0.55; ties only make it conservative.
    rng = np.random.default_rng(7)
    draws = rng.choice([1.0, 0.5, 0.0], p=[0.35, 0.4, 0.25], size=(2000, 16))
    covered = sum(r.low <= 0.55 <= r.high for r in map(win_rate, draws))
    assert covered / 2000 >= 0.93
