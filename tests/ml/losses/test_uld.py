"""Tests for ml/losses/uld.py: sorted-probability L1 (ULD) on cases small enough to work by hand."""

import math

import torch

from ml.losses.common import IGNORE_INDEX
from ml.losses.uld import sorted_teacher_probs, uld_distance, uld_loss


def test_uld_distance_full_vocabularies_of_different_sizes_by_hand():
    # teacher V_T=3 p=[.2,.5,.3] -> sorted [.5,.3,.2]; student V_S=2 p=[.25,.75] -> sorted [.75,.25] + pad 0
    # ULD = |.5-.75| + |.3-.25| + |.2-0| = .25 + .05 + .2 = .5  (token identities play no part)
    teacher = sorted_teacher_probs(torch.tensor([0.2, 0.5, 0.3]).log())
    torch.testing.assert_close(teacher, torch.tensor([0.5, 0.3, 0.2]))
    torch.testing.assert_close(uld_distance(torch.tensor([0.25, 0.75]), teacher), torch.tensor(0.5))


def test_uld_distance_from_a_teacher_top_k_alone_by_hand():
    # an endpoint's top-2 [.6,.3] (no rest bucket, no renormalisation); student p=[.1,.2,.7] keeps its
    # top 2 [.7,.2]: ULD = |.6-.7| + |.3-.2| = .2
    got = uld_distance(torch.tensor([0.1, 0.2, 0.7]), torch.tensor([0.6, 0.3]))
    torch.testing.assert_close(got, torch.tensor(0.2))
    top2 = sorted_teacher_probs(torch.tensor([0.3, 0.1, 0.6]).log(), top_k=2)
    torch.testing.assert_close(top2, torch.tensor([0.6, 0.3]))


def test_uld_loss_nll_plus_mean_over_groups_by_hand():
    # one row, T=2 shifted positions, both response tokens; V_S=2
    # position 0: p=[.25,.75], label 1 -> -ln .75; position 1: p=[.5,.5], label 0 -> -ln .5
    # NLL = (ln(4/3) + ln 2)/2. Groups at positions 0 and 1 against teachers [.5,.3,.2] and [1,0,0]:
    # ULD_0 = .5 (above); ULD_1 = |1-.5| + |0-.5| + 0 = 1; a third, masked group is ignored.
    # L = NLL + 2 * (0.5 + 1)/2
    logits = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]]).log().requires_grad_()
    labels = torch.tensor([[1, 0]])
    positions = torch.tensor([[0, 1, 0]])
    teacher = torch.tensor([[[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [9.0, 9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    loss, metrics = uld_loss(logits, labels, positions, teacher, mask, weight=2.0)
    nll = (math.log(4 / 3) + math.log(2)) / 2
    torch.testing.assert_close(metrics["nll"], torch.tensor(nll))
    torch.testing.assert_close(metrics["uld"], torch.tensor(0.75))
    torch.testing.assert_close(loss, torch.tensor(nll + 1.5))
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    labels_masked = torch.tensor([[IGNORE_INDEX, 0]])  # the NLL term follows the labels only
    _, metrics = uld_loss(logits, labels_masked, positions, teacher, mask)
    torch.testing.assert_close(metrics["nll"], torch.tensor(math.log(2)))
