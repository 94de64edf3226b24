"""Tests for ml/losses/dpo.py: the DPO loss and TRL-named reward metrics, worked by hand."""

import math

import torch

from ml.losses.dpo import dpo_loss


def test_dpo_loss_and_metrics_by_hand():
    # pair 0: chosen log-ratio -1-(-2) = 1, rejected -3-(-2) = -1, delta 2, beta*delta = 1 -> ln(1+e^-1)
    # pair 1: chosen -4-(-3) = -1, rejected -2-(-3) = 1, delta -2, beta*delta = -1 -> ln(1+e)
    # mean: (ln(1+e) - 1 + ln(1+e)) / 2 = ln(1+e) - 1/2
    loss, metrics = dpo_loss(
        torch.tensor([-1.0, -4.0]),
        torch.tensor([-3.0, -2.0]),
        torch.tensor([-2.0, -3.0]),
        torch.tensor([-2.0, -3.0]),
        beta=0.5,
    )
    torch.testing.assert_close(loss, torch.tensor(math.log(1 + math.e) - 0.5))
    # rewards/chosen = 0.5*[1,-1] -> mean 0; rejected = 0.5*[-1,1] -> 0; margins [1,-1] -> 0; one of two > 0
    torch.testing.assert_close(metrics["rewards/chosen"], torch.tensor(0.0))
    torch.testing.assert_close(metrics["rewards/rejected"], torch.tensor(0.0))
    torch.testing.assert_close(metrics["rewards/margins"], torch.tensor(0.0))
    torch.testing.assert_close(metrics["rewards/accuracies"], torch.tensor(0.5))
    torch.testing.assert_close(metrics["logps/chosen"], torch.tensor(-2.5))
    torch.testing.assert_close(metrics["logps/rejected"], torch.tensor(-2.5))


def test_policy_equal_to_reference_gives_log_two():
    logps_chosen, logps_rejected = torch.randn(5) - 10, torch.randn(5) - 10
    loss, metrics = dpo_loss(logps_chosen, logps_rejected, logps_chosen.clone(), logps_rejected.clone())
    torch.testing.assert_close(loss, torch.tensor(math.log(2)))
    assert metrics["rewards/accuracies"].item() == 0.0  # a zero margin is not a win


def test_metric_names_are_trls_and_detached():
    policy = torch.randn(3, requires_grad=True)
    _, metrics = dpo_loss(policy, torch.randn(3), torch.randn(3), torch.randn(3))
    assert set(metrics) == {
        "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected",
    }
    assert not any(value.requires_grad for value in metrics.values())


def test_dpo_loss_gradcheck():
    chosen = torch.randn(3, dtype=torch.float64, requires_grad=True)
    rejected = torch.randn(3, dtype=torch.float64, requires_grad=True)
    ref_chosen, ref_rejected = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda c, r: dpo_loss(c, r, ref_chosen, ref_rejected)[0], (chosen, rejected))
