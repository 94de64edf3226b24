"""Tests for ml/losses/sft.py: NLL averaged over the response tokens of the whole batch."""

import math

import torch
import torch.nn.functional as F

from ml.losses.common import IGNORE_INDEX
from ml.losses.sft import sft_loss


def test_sft_loss_by_hand_is_a_token_mean_over_the_batch():
    # row 0: [0,0] label 1 -> -ln 1/2 = ln 2; second position is padding
    # row 1: [ln3,0] label 0 -> -ln 3/4 = ln 4/3; [0,ln3] label 0 -> -ln 1/4 = ln 4
    # mean over the 3 response tokens: (ln 2 + ln 4/3 + ln 4) / 3 = ln(32/3) / 3
    logits = torch.tensor(
        [[[0.0, 0.0], [5.0, 5.0]], [[math.log(3), 0.0], [0.0, math.log(3)]]]
    )
    labels = torch.tensor([[1, IGNORE_INDEX], [0, 0]])
    loss, metrics = sft_loss(logits, labels)
    torch.testing.assert_close(loss, torch.tensor(math.log(32 / 3) / 3))
    assert metrics["num_tokens"].item() == 3.0
    assert not metrics["nll"].requires_grad


def test_sft_loss_matches_torch_cross_entropy():
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[IGNORE_INDEX, 3, 1, 6], [IGNORE_INDEX, IGNORE_INDEX, 0, IGNORE_INDEX]])
    expected = F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(sft_loss(logits, labels)[0], expected)


def test_sft_loss_gradcheck():
    logits = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 2, 3]])
    assert torch.autograd.gradcheck(lambda z: sft_loss(z, labels)[0], (logits,))
