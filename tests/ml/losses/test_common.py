"""Tests for ml/losses/common.py: log-prob sums over response tokens, masked means and KL order."""

import math

import torch
import torch.nn.functional as F

from ml.losses.common import IGNORE_INDEX, masked_mean, sequence_logps, token_kl, token_logps


def test_token_and_sequence_logps_by_hand():
    # position 0: logits [0, 0] -> p = [1/2, 1/2], label 0 -> log 1/2
    # position 1: logits [ln 3, 0] -> p = [3/4, 1/4], label 1 -> log 1/4
    # position 2: prompt/padding (-100) -> 0 whatever its logits
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [9.0, -9.0]]])
    labels = torch.tensor([[0, 1, IGNORE_INDEX]])
    per_token = token_logps(logits, labels)
    torch.testing.assert_close(per_token, torch.tensor([[math.log(0.5), math.log(0.25), 0.0]]))
    # SUM, not mean: log 1/2 + log 1/4 = -log 8
    torch.testing.assert_close(sequence_logps(logits, labels), torch.tensor([-math.log(8)]))


def test_token_logps_upcasts_half_precision():
    logits = torch.randn(1, 3, 5).to(torch.bfloat16)
    labels = torch.tensor([[1, 2, IGNORE_INDEX]])
    assert token_logps(logits, labels).dtype == torch.float32


def test_masked_mean_is_over_all_kept_positions_of_the_batch():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [True, True]])
    # (1 + 3 + 4) / 3, not the mean of per-row means (1 + 3.5) / 2
    torch.testing.assert_close(masked_mean(values, mask), torch.tensor(8 / 3))
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_token_kl_order_is_kl_p_given_q():
    p = torch.tensor([0.5, 0.5])
    q = torch.tensor([0.25, 0.75])
    # KL(p||q) = 1/2 ln(0.5/0.25) + 1/2 ln(0.5/0.75) = 1/2 ln(4/3)
    # KL(q||p) = 1/4 ln(1/2) + 3/4 ln(3/2) ~ 0.1308, a different number
    expected = 0.5 * math.log(4 / 3)
    torch.testing.assert_close(token_kl(p.log(), q.log()), torch.tensor(expected))
    assert abs(token_kl(q.log(), p.log()).item() - expected) > 1e-2
    # F.kl_div(input=log q, target=p) is the same KL(p||q): the library's order is the reverse of the math
    torch.testing.assert_close(F.kl_div(q.log(), p, reduction="sum"), torch.tensor(expected))
