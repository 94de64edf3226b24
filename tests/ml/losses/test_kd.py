"""Tests for ml/losses/kd.py: forward/reverse KL and generalized JSD, their beta limits, masking,
temperature, and agreement with TRL's GKD implementation."""

import math

import pytest
import torch

from ml.losses.kd import generalized_jsd, kd_loss

# one kept position: teacher [0,0] -> p_T = [1/2, 1/2]; student [0, ln3] -> p_S = [1/4, 3/4].
# the second position is masked out and carries wildly different logits to prove it is ignored.
TEACHER = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
STUDENT = torch.tensor([[[0.0, math.log(3)], [-9.0, 9.0]]])
MASK = torch.tensor([[True, False]])


def test_forward_and_reverse_kl_by_hand():
    # forward KL(p_T||p_S) = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3)
    forward, _ = kd_loss(STUDENT, TEACHER, MASK, kind="forward")
    torch.testing.assert_close(forward, torch.tensor(0.5 * math.log(4 / 3)))
    # reverse KL(p_S||p_T) = 1/4 ln(1/4 / 1/2) + 3/4 ln(3/4 / 1/2) = 3/4 ln 3 - ln 2
    reverse, _ = kd_loss(STUDENT, TEACHER, MASK, kind="reverse")
    torch.testing.assert_close(reverse, torch.tensor(0.75 * math.log(3) - math.log(2)))


def test_jsd_half_by_hand():
    # m = 1/2 p_S + 1/2 p_T = [3/8, 5/8]
    # KL(p_T||m) = 1/2 ln(4/3) + 1/2 ln(4/5);  KL(p_S||m) = 1/4 ln(2/3) + 3/4 ln(6/5)
    kl_teacher = 0.5 * math.log(4 / 3) + 0.5 * math.log(4 / 5)
    kl_student = 0.25 * math.log(2 / 3) + 0.75 * math.log(6 / 5)
    jsd, _ = kd_loss(STUDENT, TEACHER, MASK, kind="jsd", beta=0.5)
    torch.testing.assert_close(jsd, torch.tensor(0.5 * kl_teacher + 0.5 * kl_student))


def test_jsd_endpoints_are_forward_and_reverse_kl():
    student, teacher = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [False, True, True]])
    forward, _ = kd_loss(student, teacher, mask, kind="forward")
    reverse, _ = kd_loss(student, teacher, mask, kind="reverse")
    torch.testing.assert_close(kd_loss(student, teacher, mask, kind="jsd", beta=0.0)[0], forward)
    torch.testing.assert_close(kd_loss(student, teacher, mask, kind="jsd", beta=1.0)[0], reverse)


def test_jsd_tends_to_forward_and_reverse_kl_as_beta_goes_to_the_ends():
    # JSD(beta)/beta -> KL(p_T||p_S) as beta -> 0 and JSD(beta)/(1-beta) -> KL(p_S||p_T) as beta -> 1;
    # the error is O(beta), so 1e-5 leaves about five correct digits
    student_logps = torch.randn(4, 6, dtype=torch.float64).log_softmax(-1)
    teacher_logps = torch.randn(4, 6, dtype=torch.float64).log_softmax(-1)
    eps = 1e-5
    forward = generalized_jsd(student_logps, teacher_logps, 0.0)
    reverse = generalized_jsd(student_logps, teacher_logps, 1.0)
    torch.testing.assert_close(generalized_jsd(student_logps, teacher_logps, eps) / eps, forward, rtol=1e-4, atol=0)
    torch.testing.assert_close(
        generalized_jsd(student_logps, teacher_logps, 1 - eps) / eps, reverse, rtol=1e-4, atol=0
    )


def test_temperature_divides_logits():
    # at temperature 2, student [0, 2 ln3] is the same distribution as [0, ln3] at temperature 1
    hot, _ = kd_loss(STUDENT * 2, TEACHER * 2, MASK, temperature=2.0)
    torch.testing.assert_close(hot, torch.tensor(0.5 * math.log(4 / 3)))


def test_identical_distributions_give_zero_for_every_kind():
    logits = torch.randn(2, 3, 5)
    mask = torch.ones(2, 3, dtype=torch.bool)
    for kind in ("forward", "reverse", "jsd"):
        torch.testing.assert_close(kd_loss(logits, logits.clone(), mask, kind=kind)[0], torch.tensor(0.0))


def test_vocabulary_mismatch_and_bad_kind_are_refused():
    with pytest.raises(ValueError, match="shared tokenizer"):
        kd_loss(torch.randn(1, 2, 5), torch.randn(1, 2, 6), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="kind"):
        kd_loss(STUDENT, TEACHER, MASK, kind="sideways")
    with pytest.raises(ValueError, match="beta"):
        kd_loss(STUDENT, TEACHER, MASK, kind="jsd", beta=1.5)


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_kd_loss_gradcheck(kind):
    student = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(1, 2, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True]])
    assert torch.autograd.gradcheck(lambda z: kd_loss(z, teacher, mask, kind=kind, beta=0.3)[0], (student,))


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_matches_trl_gkd_generalized_jsd(beta, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDTrainer

    student, teacher = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    labels = torch.tensor([[-100, 3, 4, -100], [-100, -100, 1, 2]])
    expected = GKDTrainer.generalized_jsd_loss(student, teacher, labels=labels, beta=beta, temperature=0.7)
    ours, _ = kd_loss(student, teacher, labels != -100, kind="jsd", beta=beta, temperature=0.7)
    torch.testing.assert_close(ours, expected)
