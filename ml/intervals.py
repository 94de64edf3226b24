"""Intervals and tests for proportions (win rates with ties as half, oracle accuracy, agreement), and
the power arithmetic behind the teacher-hacking monitor. Standard library only, so the web process
may import it as it does ml.config: the launch form shows the monitor's minimum detectable drop and
the monitor runs its test on stored checkpoint evaluations.

Why Wilson with a continuity correction (Newcombe 1998, method 4): the percentile bootstrap of a
0/1 mean collapses to zero width when every outcome agrees and covers 0.79-0.80 at n = 32 near 0.05
or 0.95; the plain Wilson interval dips to 0.92 at n = 16, p = 0.5. The corrected one stays at or above
0.95 on {16, 32, 100, 500} x {0.02, 0.5, 0.98} (tests/ml/test_intervals.py simulates it). A tie
counted as half a win keeps the interval valid: it lowers the variance below p(1 - p), so the
interval only grows conservative."""
from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def z_quantile(q: float) -> float:
    """The standard normal's q-quantile, e.g. z_quantile(0.975) = 1.95996."""
    return _NORMAL.inv_cdf(q)


def wilson_interval(hits: float, n: int, *, ci: float = 0.95) -> tuple[float, float]:
    """Continuity-corrected Wilson score interval for hits successes out of n (hits may be
    fractional: ties count half). Never zero width for n >= 1: 0 of n still has an upper bound above 0.
    E.g. 0 of 10 -> (0.0, 0.3445); 5 of 10 -> (0.2014, 0.7986)."""
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in [0, n], got {hits} of {n}")
    z = z_quantile(0.5 + ci / 2)
    p, zz = hits / n, z * z
    denominator = 2 * (n + zz)
    low = 0.0 if hits == 0 else \
        (2 * n * p + zz - (z * math.sqrt(max(0.0, zz - 1 / n + 4 * n * p * (1 - p) + (4 * p - 2))) + 1)) / denominator
    high = 1.0 if hits == n else \
        (2 * n * p + zz + (z * math.sqrt(max(0.0, zz - 1 / n + 4 * n * p * (1 - p) - (4 * p - 2))) + 1)) / denominator
    return max(0.0, low), min(1.0, high)


def drop_z(before: float, n_before: int, after: float, n_after: int) -> float:
    """One-sided two-proportion z statistic (pooled variance) for a fall from `before` to `after`;
    positive when the rate fell, 0.0 when the pooled rate is 0 or 1 (nothing can have moved).
    E.g. 0.6 -> 0.4 at n = 100 each: pooled 0.5, se = sqrt(0.25 * 2/100) = 0.0707, z = 2.828."""
    pooled = (before * n_before + after * n_after) / (n_before + n_after)
    variance = pooled * (1 - pooled) * (1 / n_before + 1 / n_after)
    return (before - after) / math.sqrt(variance) if variance > 0 else 0.0


def stretches(evaluations: int) -> int:
    """How many (start, end) stretches a run with this many evaluated checkpoints has: every pair."""
    return evaluations * (evaluations - 1) // 2


def critical_z(comparisons: int, *, alpha: float = 0.05) -> float:
    """One-sided critical z with a Bonferroni correction over `comparisons` tests, so the chance of
    any false alarm over all of them stays <= alpha. E.g. 10 comparisons: z_{1-0.005} = 2.5758."""
    return z_quantile(1 - alpha / max(1, comparisons))


def min_detectable_drop(n: int, *, evaluations: int = 5, alpha: float = 0.05, power: float = 0.8,
                        rate: float = 0.5) -> float:
    """The smallest true fall in a proportion (0-1 scale) between two of `evaluations` checkpoints,
    each measured on n prompts, that the monitor's test detects with probability `power`:
    (z_{1-alpha/m} + z_{power}) * sqrt(2 rate (1 - rate) / n), m = every stretch of the run.
    rate = 0.5 is the worst case. E.g. n = 100, 5 evaluations: (2.5758 + 0.8416) * 0.07071 = 0.2417."""
    z_total = critical_z(stretches(evaluations), alpha=alpha) + z_quantile(power)
    return z_total * math.sqrt(2 * rate * (1 - rate) / n)


def sample_size_for_drop(drop: float, *, evaluations: int = 5, alpha: float = 0.05, power: float = 0.8,
                         rate: float = 0.5) -> int:
    """The smallest n per checkpoint whose min_detectable_drop is at most `drop` (the inverse of it).
    E.g. a 10-point drop over 5 evaluations: ceil(3.4174^2 * 0.5 / 0.01) = 584."""
    z_total = critical_z(stretches(evaluations), alpha=alpha) + z_quantile(power)
    return math.ceil(z_total ** 2 * 2 * rate * (1 - rate) / drop ** 2)
