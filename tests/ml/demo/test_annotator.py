"""Simulated annotator: exact with error_rate 0, always wrong with error_rate 1, about right in
between, and repeatable by seed."""
from ml.demo.annotator import SimulatedAnnotator

PROMPT = "What is 2 plus 3?"


def test_perfect_annotator_follows_the_oracle():
    judge = SimulatedAnnotator(error_rate=0.0, seed=0).judge
    assert judge(PROMPT, "5", "6") == "a"
    assert judge(PROMPT, "6", "5") == "b"
    assert judge(PROMPT, "5", "5.") == "tie"
    assert judge(PROMPT, "1", "2") == "tie"


def test_always_wrong_annotator_never_gives_the_truth():
    annotator = SimulatedAnnotator(error_rate=1.0, seed=0)
    verdicts = {annotator.judge(PROMPT, "5", "6") for _ in range(50)}
    assert verdicts == {"b", "tie"}


def test_error_rate_is_respected_and_seeded():
    verdicts = [SimulatedAnnotator(error_rate=0.2, seed=3).judge(PROMPT, "5", "6") for _ in range(3)]
    assert len(set(verdicts)) == 1  # a fresh annotator with the same seed repeats itself
    annotator = SimulatedAnnotator(error_rate=0.2, seed=3)
    wrong = sum(annotator.judge(PROMPT, "5", "6") != "a" for _ in range(2000))
    assert 340 < wrong < 460  # 400 expected; binomial sd ~18
