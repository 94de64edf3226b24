"""Tests for ml/losses/taid.py: the interpolated-target cross-entropy and the adaptive t schedule."""

import math

import pytest
import torch

from ml.losses.taid import TaidSchedule, taid_loss

# teacher [0,0] -> p_T = [1/2, 1/2]; student [0, ln3] -> p_S = [1/4, 3/4]; second position masked
TEACHER = torch.tensor([[[0.0, 0.0], [7.0, -7.0]]])
STUDENT = torch.tensor([[[0.0, math.log(3)], [-7.0, 7.0]]])
MASK = torch.tensor([[True, False]])


def test_t_one_is_cross_entropy_to_the_teacher():
    # -(1/2 ln 1/4 + 1/2 ln 3/4) = 1/2 ln(16/3)
    loss, metrics = taid_loss(STUDENT, TEACHER, MASK, t=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.5 * math.log(16 / 3)))
    assert metrics["t"].item() == 1.0


def test_t_half_interpolates_in_logit_space():
    # target logits 1/2 [0, ln3] + 1/2 [0, 0] = [0, ln sqrt3] -> p_t = [1, sqrt3] / (1 + sqrt3)
    p0, p1 = 1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))
    loss, _ = taid_loss(STUDENT, TEACHER, MASK, t=0.5)
    torch.testing.assert_close(loss, torch.tensor(-(p0 * math.log(0.25) + p1 * math.log(0.75))))


def test_t_zero_gives_the_students_entropy_and_no_gradient():
    # target = stopgrad(p_S): value = H(p_S) = -(1/4 ln 1/4 + 3/4 ln 3/4); gradient p_S - stopgrad(p_S) = 0.
    # Without the stopgrad the entropy's own gradient would be non-zero here.
    student = STUDENT.clone().requires_grad_(True)
    loss, _ = taid_loss(student, TEACHER, MASK, t=0.0)
    torch.testing.assert_close(loss, torch.tensor(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))))
    loss.backward()
    torch.testing.assert_close(student.grad, torch.zeros_like(student))


def test_refuses_bad_t_and_mismatched_vocabularies():
    with pytest.raises(ValueError, match="t must"):
        taid_loss(STUDENT, TEACHER, MASK, t=1.2)
    with pytest.raises(ValueError, match="shared tokenizer"):
        taid_loss(torch.randn(1, 2, 3), torch.randn(1, 2, 4), MASK, t=0.5)


def test_taid_loss_gradcheck_through_the_teacher_leg():
    # finite differences on the student would also move the detached target, so they cannot match the
    # stopgrad by design; the teacher leg is fully differentiable, and the student leg has a closed form below
    student = torch.randn(1, 2, 4, dtype=torch.float64)
    teacher = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True]])
    assert torch.autograd.gradcheck(lambda z: taid_loss(student, z, mask, t=0.4)[0], (teacher,))


def test_student_gradient_is_softmax_minus_target_over_token_count():
    # d/dz_S of -(1/N) sum p_t . log softmax(z_S) with p_t held fixed = (softmax(z_S) - p_t) / N
    student = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 3, 5, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    taid_loss(student, teacher, mask, t=0.4)[0].backward()
    target = (0.6 * student.detach() + 0.4 * teacher).softmax(-1)
    expected = (student.detach().softmax(-1) - target) * mask.unsqueeze(-1) / mask.sum()
    torch.testing.assert_close(student.grad, expected)


def test_schedule_by_hand():
    schedule = TaidSchedule(10, t_start=0.4, alpha=0.5, beta=0.9)
    assert schedule.update(2.0) == 0.4  # first step only records the loss
    # step 2, loss 1: relative decrease (2-1)/2 = .5; m = .9*0 + .1*.5 = .05
    # t_linear = .4 + .6 * 2/10 = .52;  adaptive = .4 + .5 * sigmoid(.05) * .6 = .4 + .3 * sigmoid(.05) ~ .5537
    expected = 0.4 + 0.3 / (1 + math.exp(-0.05))
    assert schedule.update(1.0) == pytest.approx(expected)
    assert schedule.momentum == pytest.approx(0.05)


def test_schedule_follows_the_linear_floor_reaches_one_and_never_falls():
    schedule = TaidSchedule(10)  # defaults: alpha 5e-4 is too small to beat the linear floor
    ts = [schedule.update(loss) for loss in [3.0, 2.0, 5.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    assert ts[4] == pytest.approx(0.4 + 0.6 * 5 / 10)
    assert all(later >= earlier for earlier, later in zip(ts, ts[1:]))
    assert ts[9] == 1.0 and ts[-1] == 1.0


def test_schedule_state_round_trips():
    schedule = TaidSchedule(100, alpha=0.1)
    for loss in [4.0, 3.0, 2.5]:
        schedule.update(loss)
    resumed = TaidSchedule(100, alpha=0.1)
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.update(2.0) == schedule.update(2.0)
