"""Tests for ml/losses/dckd.py: the K+1-bin forward KL and the DCKD objective, worked by hand."""

import math

import torch

from ml.losses.common import IGNORE_INDEX
from ml.losses.dckd import binned_forward_kl, dckd_loss
from ml.losses.kd import kd_loss

ALL = torch.tensor([[True]])


def test_binned_kl_one_kept_token_by_hand():
    # student uniform over V=4 -> bins [p(2), rest] = [1/4, 3/4]; teacher top-1 is id 2 at 1/2 -> [1/2, 1/2]
    # KL = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3)
    kl = binned_forward_kl(torch.zeros(1, 1, 4), torch.tensor([[[2]]]), torch.tensor([[[0.5]]]), ALL)
    torch.testing.assert_close(kl, torch.tensor(0.5 * math.log(4 / 3)))


def test_binned_kl_two_kept_tokens_by_hand():
    # student logits ln[4,2,1,1] -> p = [1/2, 1/4, 1/8, 1/8]; bins at ids (0,1) + rest = [.5, .25, .25]
    # teacher bins [.5, .3, .2];  KL = .5 ln 1 + .3 ln(.3/.25) + .2 ln(.2/.25) = .3 ln 1.2 + .2 ln 0.8
    student = torch.tensor([[[4.0, 2.0, 1.0, 1.0]]]).log()
    kl = binned_forward_kl(student, torch.tensor([[[0, 1]]]), torch.tensor([[[0.5, 0.3]]]), ALL)
    torch.testing.assert_close(kl, torch.tensor(0.3 * math.log(1.2) + 0.2 * math.log(0.8)))


def test_zero_when_student_matches_teacher_on_the_kept_bins():
    # teacher keeps ids (0,1) at (.5,.3); two students agree there but split the rest differently
    ids, probs = torch.tensor([[[0, 1]]]), torch.tensor([[[0.5, 0.3]]])
    for tail in ([0.15, 0.05], [0.05, 0.15]):
        student = torch.tensor([[[0.5, 0.3, *tail]]]).log()
        torch.testing.assert_close(binned_forward_kl(student, ids, probs, ALL), torch.tensor(0.0))
    # and on random logits, a teacher equal to the student's own top-K
    logits = torch.randn(2, 3, 11)
    top_probs, top_ids = logits.softmax(-1).topk(4, dim=-1)
    zero = binned_forward_kl(logits, top_ids, top_probs, torch.ones(2, 3, dtype=torch.bool))
    torch.testing.assert_close(zero, torch.tensor(0.0), atol=1e-6, rtol=0)


def test_full_vocabulary_top_k_is_the_plain_forward_kl():
    # K = V leaves an empty rest bin (clamped at 1e-8), so the binned KL is the exact forward KL
    student, teacher = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    teacher_probs, teacher_ids = teacher.softmax(-1).topk(6, dim=-1)
    binned = binned_forward_kl(student, teacher_ids, teacher_probs, mask)
    torch.testing.assert_close(binned, kd_loss(student, teacher, mask, kind="forward")[0], atol=1e-6, rtol=0)


def test_masked_positions_are_ignored_and_peaked_inputs_stay_finite():
    # position 1 is masked and holds a teacher whose top-1 has all the mass and a peaked student
    student = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [80.0, -80.0, -80.0, -80.0]]], requires_grad=True)
    ids = torch.tensor([[[2], [0]]])
    probs = torch.tensor([[[0.5], [1.0]]])
    kl = binned_forward_kl(student, ids, probs, torch.tensor([[True, False]]))
    torch.testing.assert_close(kl, torch.tensor(0.5 * math.log(4 / 3)))
    # unmasked, the clamps keep both rest bins (0 and ~1e-70) finite
    peaked = binned_forward_kl(student, ids, probs, torch.tensor([[True, True]]))
    peaked.backward()
    assert torch.isfinite(peaked) and torch.isfinite(student.grad).all()


def test_dckd_loss_by_hand():
    # student uniform over V=4 on one position of each response
    # chosen label 2 -> NLL ln 4; teacher on chosen keeps id 2 at 1/2 -> KL 1/2 ln(4/3) (as above)
    # teacher on rejected keeps id 0 at 1/4 = the student's own value -> KL 0, so alpha_l cannot matter
    uniform = torch.zeros(1, 1, 4)
    loss, metrics = dckd_loss(
        uniform, torch.tensor([[2]]), torch.tensor([[[2]]]), torch.tensor([[[0.5]]]),
        uniform, torch.tensor([[1]]), torch.tensor([[[0]]]), torch.tensor([[[0.25]]]),
        alpha_w=0.1, alpha_l=7.0,
    )
    torch.testing.assert_close(loss, torch.tensor(math.log(4) + 0.1 * 0.5 * math.log(4 / 3)))
    torch.testing.assert_close(metrics["kl/rejected"], torch.tensor(0.0))
    torch.testing.assert_close(metrics["nll"], torch.tensor(math.log(4)))


def test_dckd_weights_each_kl_by_its_own_alpha():
    # both teachers keep one id at 1/2 against a uniform student over V=4: each KL is 1/2 ln(4/3)
    # L = ln 4 + (0.1 + 0.3) * 1/2 ln(4/3)
    uniform = torch.zeros(1, 1, 4)
    loss, metrics = dckd_loss(
        uniform, torch.tensor([[2]]), torch.tensor([[[2]]]), torch.tensor([[[0.5]]]),
        uniform, torch.tensor([[1]]), torch.tensor([[[0]]]), torch.tensor([[[0.5]]]),
        alpha_w=0.1, alpha_l=0.3,
    )
    torch.testing.assert_close(loss, torch.tensor(math.log(4) + 0.4 * 0.5 * math.log(4 / 3)))
    torch.testing.assert_close(metrics["kl/rejected"], torch.tensor(0.5 * math.log(4 / 3)))


def test_dckd_loss_gradcheck():
    chosen = torch.randn(1, 3, 5, dtype=torch.float64, requires_grad=True)
    rejected = torch.randn(1, 2, 5, dtype=torch.float64, requires_grad=True)
    chosen_labels = torch.tensor([[IGNORE_INDEX, 1, 4]])
    rejected_labels = torch.tensor([[IGNORE_INDEX, 0]])
    chosen_probs, chosen_ids = torch.randn(1, 3, 5, dtype=torch.float64).softmax(-1).topk(2, dim=-1)
    rejected_probs, rejected_ids = torch.randn(1, 2, 5, dtype=torch.float64).softmax(-1).topk(2, dim=-1)

    def loss(c, r):
        return dckd_loss(
            c, chosen_labels, chosen_ids, chosen_probs, r, rejected_labels, rejected_ids, rejected_probs, alpha_l=0.3
        )[0]

    assert torch.autograd.gradcheck(loss, (chosen, rejected))
