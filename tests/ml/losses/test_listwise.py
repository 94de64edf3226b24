"""Tests for ml/losses/listwise.py: ADPO's anchored softmax KL over k candidates."""

import math

import pytest
import torch

from ml.losses.dpo import dpo_loss
from ml.losses.listwise import listwise_loss


def test_listwise_loss_by_hand():
    # tau = 1, policy - ref = ln(3, 2, 1) -> softmax = (1/2, 1/3, 1/6); q = (1/2, 1/2, 0)
    # KL(q || model) = 1/2 ln(1/2 / 1/2) + 1/2 ln(1/2 / 1/3) + 0 = 1/2 ln(3/2)
    policy = torch.tensor([[3.0, 2.0, 1.0]]).log() - 5.0
    ref = torch.full((1, 3), -5.0)
    loss, metrics = listwise_loss(policy, ref, torch.tensor([[0.5, 0.5, 0.0]]), tau=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.5 * math.log(1.5)))
    assert metrics["top1_accuracy"].item() == 1.0


def test_two_candidates_one_hot_is_dpo_with_beta_one_over_tau():
    policy, ref = torch.randn(6, 2) - 20, torch.randn(6, 2) - 20
    one_hot = torch.tensor([[1.0, 0.0]]).expand(6, 2)
    listwise, _ = listwise_loss(policy, ref, one_hot, tau=10.0)
    dpo, _ = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], beta=0.1)
    torch.testing.assert_close(listwise, dpo)


def test_zero_when_the_anchored_softmax_equals_the_target():
    policy, ref = torch.randn(3, 4), torch.randn(3, 4)
    target = ((policy - ref) / 0.5).softmax(-1)
    torch.testing.assert_close(listwise_loss(policy, ref, target, tau=0.5)[0], torch.tensor(0.0))
    with pytest.raises(ValueError, match="tau"):
        listwise_loss(policy, ref, target, tau=0.0)


def test_listwise_loss_gradcheck():
    policy = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(2, 3, dtype=torch.float64)
    target = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: listwise_loss(p, ref, target, tau=0.5)[0], (policy,))
