"""Tests for ml/losses/adpa.py: the advantage precompute (missing-token floor), the clip modes and the
ADPA objective, worked by hand."""

import math

import pytest
import torch

from ml.losses.adpa import adpa_advantages, adpa_loss, clip_advantages
from ml.losses.common import IGNORE_INDEX


def test_advantages_use_the_sft_models_own_floor_for_missing_tokens():
    # pi_dpo top-3: ids (5, 7, 9) at (.5, .3, .05);  pi_sft top-3: ids (5, 9, 2) at (.4, .2, .1)
    # id 5: ln(.5/.4);  id 9: ln(.05/.2) = ln(1/4);  id 7 is missing from pi_sft's top-3, so it takes
    # pi_sft's smallest top-3 prob .1 -> ln(.3/.1) = ln 3 (the released code's pi_dpo floor .05 would give ln 6)
    advantages = adpa_advantages(
        torch.tensor([[[5, 7, 9]]]),
        torch.tensor([[[0.5, 0.3, 0.05]]]).log(),
        torch.tensor([[[5, 9, 2]]]),
        torch.tensor([[[0.4, 0.2, 0.1]]]).log(),
    )
    torch.testing.assert_close(advantages, torch.tensor([[[math.log(1.25), math.log(3), math.log(0.25)]]]))


def test_missing_token_floor_is_at_least_one_in_ten_million():
    # pi_sft's smallest top-2 prob is 1e-9 < 1e-7, so the missing id 3 uses 1e-7: ln(.2 / 1e-7)
    advantages = adpa_advantages(
        torch.tensor([[[0, 3]]]),
        torch.tensor([[[0.6, 0.2]]], dtype=torch.float64).log(),
        torch.tensor([[[0, 1]]]),
        torch.tensor([[[0.7, 1e-9]]], dtype=torch.float64).log(),
    )
    expected = torch.tensor([[[math.log(0.6 / 0.7), math.log(0.2 / 1e-7)]]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)


def test_sft_floor_applies_to_every_probability_by_hand():
    # floor 1e-3.  pi_dpo top-3: ids (4, 6, 8) at (.7, .2, 1e-5);  pi_sft top-3: ids (4, 8, 1) at (.5, 1e-6, 1e-4)
    # id 4 (matched):            ln(.7 / .5)
    # id 6 (missing from pi_sft): pi_sft's smallest top-3 prob, floored: min(.5, 1e-3, 1e-3) -> ln(.2 / 1e-3) = ln 200
    # id 8 (matched): pi_dpo's 1e-5 AND pi_sft's 1e-6 both floored to 1e-3 -> ln 1 = 0
    #   (flooring only the fill would give ln(1e-5 / 1e-6) = ln 10; no floor on pi_dpo, ln(1e-5 / 1e-3))
    advantages = adpa_advantages(
        torch.tensor([[[4, 6, 8]]]),
        torch.tensor([[[0.7, 0.2, 1e-5]]], dtype=torch.float64).log(),
        torch.tensor([[[4, 8, 1]]]),
        torch.tensor([[[0.5, 1e-6, 1e-4]]], dtype=torch.float64).log(),
        floor=1e-3,
    )
    expected = torch.tensor([[[math.log(0.7 / 0.5), math.log(200), 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)


def test_default_floor_leaves_ordinary_probabilities_alone():
    # the same case at the default 1e-7: only pi_sft's 1e-6 ... nothing is below 1e-7, so raw logs:
    # id 4 ln(.7/.5); id 6 takes pi_sft's smallest 1e-6 -> ln(.2/1e-6); id 8 ln(1e-5/1e-6) = ln 10
    advantages = adpa_advantages(
        torch.tensor([[[4, 6, 8]]]),
        torch.tensor([[[0.7, 0.2, 1e-5]]], dtype=torch.float64).log(),
        torch.tensor([[[4, 8, 1]]]),
        torch.tensor([[[0.5, 1e-6, 1e-4]]], dtype=torch.float64).log(),
    )
    expected = torch.tensor([[[math.log(0.7 / 0.5), math.log(0.2 / 1e-6), math.log(10)]]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)


def test_clip_modes():
    raw = torch.tensor([-1.5, 0.25, 3.0])
    torch.testing.assert_close(clip_advantages(raw, "released"), torch.tensor([0.0, 0.25, 1.0]))
    torch.testing.assert_close(clip_advantages(raw, "none"), raw)
    with pytest.raises(ValueError, match="advantage_clip"):
        clip_advantages(raw, "soft")


def _hand_case():
    # chosen: V=2 logits [0,0], label 0 -> NLL ln 2
    # student response: V=4 uniform -> pi_theta = 1/4 on top-K ids (0, 1) with A = (0.8, -0.5);
    # the second state is masked out and carries absurd advantages that must not count
    chosen_logits = torch.zeros(1, 1, 2)
    chosen_labels = torch.tensor([[0]])
    resp_logits = torch.zeros(1, 2, 4)
    resp_mask = torch.tensor([[True, False]])
    topk_ids = torch.tensor([[[0, 1], [2, 3]]])
    advantages = torch.tensor([[[0.8, -0.5], [100.0, 100.0]]])
    return chosen_logits, chosen_labels, resp_logits, resp_mask, topk_ids, advantages


def test_adpa_loss_by_hand_released_clip():
    # released: A -> (0.8, 0); expected advantage 1/4 * 0.8 = 0.2; loss = ln 2 - 1.6 * 0.2
    loss, metrics = adpa_loss(*_hand_case())
    torch.testing.assert_close(loss, torch.tensor(math.log(2) - 0.32))
    torch.testing.assert_close(metrics["advantage/expected"], torch.tensor(0.2))
    torch.testing.assert_close(metrics["advantage/raw_mean"], torch.tensor(0.15))  # (0.8 - 0.5) / 2
    torch.testing.assert_close(metrics["advantage/positive_share"], torch.tensor(0.5))


def test_adpa_loss_by_hand_no_clip():
    # none: expected advantage 1/4 * (0.8 - 0.5) = 0.075; loss = ln 2 - 1.6 * 0.075 = ln 2 - 0.12
    loss, _ = adpa_loss(*_hand_case(), advantage_clip="none")
    torch.testing.assert_close(loss, torch.tensor(math.log(2) - 0.12))


def test_zero_advantages_reduce_to_nll():
    chosen_logits = torch.randn(2, 3, 6)
    chosen_labels = torch.tensor([[IGNORE_INDEX, 1, 2], [IGNORE_INDEX, IGNORE_INDEX, 5]])
    resp_logits = torch.randn(2, 4, 6, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(chosen_logits.reshape(-1, 6), chosen_labels.reshape(-1))
    for mode in ("released", "none"):
        loss, _ = adpa_loss(
            chosen_logits, chosen_labels, resp_logits, torch.ones(2, 4, dtype=torch.bool),
            torch.randint(0, 6, (2, 4, 3)), torch.zeros(2, 4, 3), advantage_clip=mode,
        )
        torch.testing.assert_close(loss, expected)


def test_positive_advantage_pulls_probability_toward_that_token():
    resp_logits = torch.zeros(1, 1, 4, requires_grad=True)
    loss, _ = adpa_loss(
        torch.zeros(1, 1, 2), torch.tensor([[0]]), resp_logits, torch.tensor([[True]]),
        torch.tensor([[[1, 2]]]), torch.tensor([[[0.5, 0.0]]]),
    )
    loss.backward()
    # descending the loss raises logit 1 (negative gradient) and lowers the others
    assert resp_logits.grad[0, 0, 1] < 0 and (resp_logits.grad[0, 0, [0, 2, 3]] > 0).all()


@pytest.mark.parametrize("mode", ["released", "none"])
def test_adpa_loss_gradcheck(mode):
    chosen = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    resp = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 3]])
    mask = torch.tensor([[True, True, False]])
    topk_ids = torch.tensor([[[0, 1], [2, 3], [1, 0]]])
    # advantages kept away from the clip's kinks at 0 and 1, where the derivative is undefined
    advantages = torch.tensor([[[0.3, -0.4], [1.7, 0.6], [0.2, 0.2]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda c, r: adpa_loss(c, labels, r, mask, topk_ids, advantages, advantage_clip=mode)[0], (chosen, resp)
    )
