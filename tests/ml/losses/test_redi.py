"""Tests for ml/losses/redi.py: the length-normalized, reference-free REDI objective."""

import math

import torch

from ml.losses.common import IGNORE_INDEX
from ml.losses.redi import redi_loss
from ml.losses.sft import sft_loss


def test_redi_loss_by_hand():
    # positive: [0,0] label 0 -> ln 1/2; [ln3,0] label 0 -> ln 3/4; |y+| = 2 -> mean ln(3/8)/2
    # negative: [0,0] label 1 -> ln 1/2; [0,ln3] label 0 -> ln 1/4; third position is padding;
    # |y-| = 2 -> mean ln(1/8)/2
    # L = -ln(3/8)/2 + 0.8 ln(1/8)/2
    pos_logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [0.0, 0.0]]])
    neg_logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3)], [4.0, 1.0]]])
    loss, metrics = redi_loss(
        pos_logits, torch.tensor([[0, 0, IGNORE_INDEX]]), neg_logits, torch.tensor([[1, 0, IGNORE_INDEX]]), alpha=0.8
    )
    torch.testing.assert_close(loss, torch.tensor(-math.log(3 / 8) / 2 + 0.8 * math.log(1 / 8) / 2))
    torch.testing.assert_close(metrics["logps/positive"], torch.tensor(math.log(3 / 8) / 2))
    torch.testing.assert_close(metrics["logps/negative"], torch.tensor(math.log(1 / 8) / 2))


def test_length_normalization_makes_repeating_a_token_neutral():
    # a positive of one token at ln 1/2, and the same token twice: both mean ln 1/2 per token
    neg_logits, neg_labels = torch.zeros(1, 1, 2), torch.tensor([[0]])
    once, _ = redi_loss(torch.zeros(1, 1, 2), torch.tensor([[0]]), neg_logits, neg_labels)
    twice, _ = redi_loss(torch.zeros(1, 2, 2), torch.tensor([[0, 0]]), neg_logits, neg_labels)
    torch.testing.assert_close(once, twice)


def test_alpha_zero_is_sft_on_a_single_positive():
    pos_logits = torch.randn(1, 4, 5)
    pos_labels = torch.tensor([[IGNORE_INDEX, 1, 2, 3]])
    loss, _ = redi_loss(pos_logits, pos_labels, torch.randn(1, 2, 5), torch.tensor([[0, 1]]), alpha=0.0)
    torch.testing.assert_close(loss, sft_loss(pos_logits, pos_labels)[0])


def test_redi_loss_gradcheck():
    pos = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    neg = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    pos_labels = torch.tensor([[IGNORE_INDEX, 1, 2], [IGNORE_INDEX, 3, IGNORE_INDEX]])
    neg_labels = torch.tensor([[0, 1], [2, IGNORE_INDEX]])
    assert torch.autograd.gradcheck(lambda p, n: redi_loss(p, pos_labels, n, neg_labels)[0], (pos, neg))
