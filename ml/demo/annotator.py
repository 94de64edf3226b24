"""A simulated annotator for tests and benchmarks: it judges a pair of responses with the demo
oracle (a correct response beats an incorrect one; two correct or two incorrect ones tie) and then,
with probability `error_rate`, gives a wrong verdict, the way a careless person would."""
from __future__ import annotations

import random

from ml.demo.tasks import Task, oracle_score

VERDICTS = ("a", "b", "tie")


class SimulatedAnnotator:
    def __init__(self, error_rate: float = 0.0, seed: int = 0):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.error_rate = error_rate
        self._rng = random.Random(seed)

    def judge(self, prompt: Task | str, response_a: str, response_b: str) -> str:
        """'a', 'b' or 'tie'. A mistake replaces the oracle's verdict with one of the other two,
        chosen uniformly; the random stream is the annotator's own (seeded), so runs repeat."""
        a_ok, b_ok = oracle_score(prompt, response_a), oracle_score(prompt, response_b)
        truth = "tie" if a_ok == b_ok else ("a" if a_ok else "b")
        if self._rng.random() < self.error_rate:
            return self._rng.choice([v for v in VERDICTS if v != truth])
        return truth
