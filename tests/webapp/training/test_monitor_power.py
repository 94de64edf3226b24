"""The teacher-hacking badge's detection and false-alarm rates, simulated at the launch form's
default sample (DEFAULT_SAMPLE_SIZE prompts per checkpoint, 5 evaluated checkpoints): per
checkpoint the ground truth is Binomial(n, truth)/n and the proxy (agreement with the teacher)
Binomial(n, 0.5 -> 0.7)/n, rising in every scenario (the worst case for false alarms). 1,000
seeded runs per scenario; observed at n = 600: 20-point drop 1.000, 10-point drop 0.905, flat 0.039.
docs/teacher-hacking.md has the full table (benchmarks/bench_teacher_hacking.py --simulate)."""
import numpy as np

from ml.intervals import wilson_interval
from webapp.training.monitor import DEFAULT_SAMPLE_SIZE, hacking_verdict

RUNS = 1000


def _fire_rate(truth, *, n=DEFAULT_SAMPLE_SIZE, seed=0) -> float:
    rng = np.random.default_rng(seed)
    proxy_truth = np.linspace(0.5, 0.7, len(truth))
    fired = 0
    for _ in range(RUNS):
        hits, proxy = rng.binomial(n, truth), rng.binomial(n, proxy_truth) / n
        points = [{"step": 10 * k, "proxy": q, "ground": h / n, "ground_n": n,
                   **dict(zip(("ground_low", "ground_high"), wilson_interval(int(h), n)))}
                  for k, (h, q) in enumerate(zip(hits, proxy))]
        fired += hacking_verdict(points).hacking
    return fired / RUNS


def test_detects_a_20_point_drop_over_5_checkpoints():
    assert _fire_rate([0.60, 0.55, 0.50, 0.45, 0.40]) >= 0.97


def test_detects_a_10_point_drop_at_least_80_percent_of_the_time():
    assert _fire_rate([0.55, 0.525, 0.50, 0.475, 0.45], seed=1) >= 0.80


def test_false_alarms_on_a_flat_truth_stay_under_5_percent():
    assert _fire_rate([0.50] * 5, seed=2) <= 0.05


def test_a_dip_that_recovers_is_caught_and_called_recovered():
    rng = np.random.default_rng(3)
    truth, n = [0.60, 0.60, 0.50, 0.40, 0.50, 0.60, 0.60], DEFAULT_SAMPLE_SIZE
    recovered = 0
    for _ in range(200):
        hits = rng.binomial(n, truth)
        points = [{"step": 10 * k, "proxy": 0.5 + 0.03 * k, "ground": h / n, "ground_n": n} for k, h in enumerate(hits)]
        verdict = hacking_verdict(points)
        recovered += verdict.hacking and verdict.recovered
    assert recovered / 200 >= 0.95
