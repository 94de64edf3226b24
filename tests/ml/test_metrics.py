"""Tests for ml/metrics.py against hand-worked numbers and textbook examples."""
import math

import pytest
import torch

from ml.intervals import wilson_interval
from ml.metrics import (bradley_terry, length_stats, model_token_kl,
                        oracle_accuracy, token_kl, win_rate)


def test_win_rate_counts_ties_as_half():
    result = win_rate([1, 1, 0, 0.5])
    assert result.rate == pytest.approx(0.625)  # (1 + 1 + 0 + 0.5) / 4
    assert result.n == 4
    assert 0.0 <= result.low <= 0.625 <= result.high <= 1.0
    assert result.low < result.high


def test_win_rate_interval_is_wilson_and_never_zero_width_for_constant_outcomes():
    # 2.5 of 4 (the tie counts half) -> ml.intervals.wilson_interval(2.5, 4); coverage: tests/ml/test_intervals.py
    assert (win_rate([1, 1, 0, 0.5]).low, win_rate([1, 1, 0, 0.5]).high) == wilson_interval(2.5, 4)
    unanimous = win_rate([1.0] * 7)
    assert (unanimous.rate, unanimous.high) == (1.0, 1.0)
    assert unanimous.low == pytest.approx(0.5609, abs=1e-4)  # the bootstrap said [1.0, 1.0]


def test_win_rate_rejects_bad_outcomes():
    with pytest.raises(ValueError):
        win_rate([])
    with pytest.raises(ValueError):
        win_rate([1, 0.7])


def test_bradley_terry_two_players_closed_form():
    # a beats b 3 times and loses once: score_a - score_b = log(3/1); mean-anchored -> +-log(3)/2.
    pairs = [("a", "b", 1)] * 3 + [("a", "b", 0)]
    scores = bradley_terry(pairs, prior=0, n_boot=200)
    assert scores["a"].score == pytest.approx(math.log(3) / 2, abs=1e-8)
    assert scores["b"].score == pytest.approx(-math.log(3) / 2, abs=1e-8)


def test_bradley_terry_ties_and_prior_are_half_wins():
    # 2 wins, 1 tie, 1 loss for a: wins 2.5 vs 1.5; prior=1 adds one virtual tie: 3.0 vs 2.0.
    pairs = [("a", "b", 1), ("a", "b", 1), ("b", "a", 0.5), ("b", "a", 1)]
    plain = bradley_terry(pairs, prior=0, n_boot=0)
    assert plain["a"].score - plain["b"].score == pytest.approx(math.log(2.5 / 1.5), abs=1e-8)
    shrunk = bradley_terry(pairs, prior=1, n_boot=0)
    assert shrunk["a"].score - shrunk["b"].score == pytest.approx(math.log(3.0 / 2.0), abs=1e-8)


def test_bradley_terry_reference_anchor_and_cycle():
    scores = bradley_terry([("a", "b", 1)] * 3 + [("a", "b", 0)], prior=0, n_boot=0, reference="b")
    assert scores["b"].score == 0.0
    assert scores["a"].score == pytest.approx(math.log(3), abs=1e-8)
    # A rock-paper-scissors cycle is perfectly balanced: every score is 0.
    cycle = bradley_terry([("a", "b", 1), ("b", "c", 1), ("c", "a", 1)], n_boot=0)
    assert all(s.score == pytest.approx(0.0, abs=1e-8) for s in cycle.values())


def test_bradley_terry_three_players_satisfy_the_likelihood_equations():
    # At the MLE each player's expected wins equal its actual wins: sum_j n_ij sigmoid(s_i - s_j) = W_i.
    pairs = [("a", "b", 1)] * 4 + [("b", "a", 1)] + [("b", "c", 1)] * 3 + [("c", "b", 1)] * 2 \
        + [("a", "c", 1)] * 2 + [("c", "a", 0.5)]
    scores = bradley_terry(pairs, prior=0, n_boot=300, seed=1)
    s = {p: v.score for p, v in scores.items()}
    actual = {"a": 6.5, "b": 4.0, "c": 2.5}
    expected = {p: 0.0 for p in s}
    for a, b, _ in pairs:
        expected[a] += 1 / (1 + math.exp(s[b] - s[a]))
        expected[b] += 1 / (1 + math.exp(s[a] - s[b]))
    assert expected == pytest.approx(actual, abs=1e-6)
    assert s["a"] > s["b"] > s["c"]
    assert sum(s.values()) == pytest.approx(0.0, abs=1e-9)
    assert all(v.low <= v.score <= v.high for v in scores.values())


def test_bradley_terry_without_prior_refuses_an_unbeaten_player():
    with pytest.raises(ValueError, match="never won or never lost"):
        bradley_terry([("a", "b", 1), ("a", "b", 1)], prior=0)
    finite = bradley_terry([("a", "b", 1), ("a", "b", 1)], n_boot=50)  # prior 1: (2.5 vs 0.5)
    assert finite["a"].score - finite["b"].score == pytest.approx(math.log(5), abs=1e-8)


def test_oracle_accuracy_per_family_and_overall():
    tasks = [{"family": "add", "answer": "4"}, {"family": "add", "answer": "5"},
             {"family": "sort", "answer": "a b"}]
    responses = ["4", "6", "a b"]
    result = oracle_accuracy(tasks, responses, lambda task, r: task["answer"] == r)
    assert result.by_family == {"add": 0.5, "sort": 1.0}
    assert result.counts == {"add": 2, "sort": 1}
    assert result.overall == pytest.approx(2 / 3)  # pooled over tasks, not a mean of families


def test_token_kl_hand_computed_and_masked():
    # teacher p = (1/2, 1/2), student q = (3/4, 1/4): KL(p||q) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
    teacher_logits = torch.zeros(1, 2, 2, dtype=torch.float64)
    student_logits = torch.tensor([[[math.log(3), 0.0], [5.0, -5.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, False]])  # the second, very different token must not count
    assert token_kl(teacher_logits, student_logits, mask) == pytest.approx(0.5 * math.log(4 / 3), abs=1e-9)
    assert token_kl(teacher_logits, teacher_logits, torch.ones(1, 2, dtype=torch.bool)) == pytest.approx(0.0)


def test_length_stats_numbers_and_texts():
    stats = length_stats([1, 2, 3, 4, 10])
    # mean 20/5 = 4; median 3; p90 at rank 0.9 * 4 = 3.6 -> 4 + 0.6 * (10 - 4) = 7.6.
    assert (stats.mean, stats.median, stats.p90, stats.n) == (4.0, 3.0, pytest.approx(7.6), 5)
    assert length_stats(["cat dog", "sun"]).mean == 1.5  # whitespace words without a tokenizer


def test_model_token_kl_is_zero_for_one_model_and_positive_for_two(tiny_teacher_dir, tiny_student_dir):
    from ml.modeling import load_model

    teacher = load_model(str(tiny_teacher_dir), device="cpu")
    student = load_model(str(tiny_student_dir), device="cpu")
    items = [("What is 2 plus 3?", "5"), ("Sort the words: dog cat", "cat dog"), ("How many letters in sun?", "3")]
    same = model_token_kl(teacher.model, teacher.model, teacher.tokenizer, items, batch_size=2)
    assert same == pytest.approx(0.0, abs=1e-9)
    different = model_token_kl(teacher.model, student.model, teacher.tokenizer, items, batch_size=2)
    assert different > 0.0
    # Right padding must not leak into the pooled value: one row per batch gives the same number.
    assert model_token_kl(teacher.model, student.model, teacher.tokenizer, items, batch_size=1) \
        == pytest.approx(different, rel=1e-6)
