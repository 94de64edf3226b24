"""ml/recipes/kd.py, taid.py, redi.py on the tiny fixtures: each loss falls over a few steps; KD's
on-policy draw and TAID's schedule survive a stop + resume unchanged."""
import pytest

from ml.recipes import kd, recipe_for, redi, taid
from ml.recipes.hooks import Hooks


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_kd_loss_decreases(kind, pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    result = kd.train(make_config("kd", max_steps=6, kind=kind), pairs, tmp_path, student=tiny_student_dir,
                      teacher=tiny_teacher_dir)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_kd_on_policy_resume_is_exact(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    config = make_config("kd", max_steps=4, on_policy_fraction=0.5, max_new_tokens=4)
    straight = kd.train(config, pairs, tmp_path / "a", student=tiny_student_dir, teacher=tiny_teacher_dir)
    assert {h["on_policy"] for h in straight.history} == {0.0, 1.0}  # both kinds of batch occurred
    done = []
    stopper = Hooks(on_progress=done.append, should_stop=lambda: len(done) >= 2)
    stopped = kd.train(config, pairs, tmp_path / "b", stopper, student=tiny_student_dir, teacher=tiny_teacher_dir)
    resumed = kd.train(config, pairs, tmp_path / "b", student=tiny_student_dir, teacher=tiny_teacher_dir,
                       resume_from=stopped.final_dir)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_taid_loss_decreases_and_t_rises(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    result = taid.train(make_config("taid", max_steps=6), pairs, tmp_path, student=tiny_student_dir,
                        teacher=tiny_teacher_dir)
    ts = [h["t"] for h in result.history]
    assert ts[0] == pytest.approx(0.4) and ts == sorted(ts) and ts[-1] > 0.4
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_taid_resume_continues_schedule(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    config = make_config("taid", max_steps=4)
    straight = taid.train(config, pairs, tmp_path / "a", student=tiny_student_dir, teacher=tiny_teacher_dir)
    done = []
    stopper = Hooks(on_progress=done.append, should_stop=lambda: len(done) >= 2)
    stopped = taid.train(config, pairs, tmp_path / "b", stopper, student=tiny_student_dir, teacher=tiny_teacher_dir)
    resumed = taid.train(config, pairs, tmp_path / "b", student=tiny_student_dir, teacher=tiny_teacher_dir,
                         resume_from=stopped.final_dir)
    assert [(h["loss"], h["t"]) for h in resumed.history] == [(h["loss"], h["t"]) for h in straight.history]


def test_redi_loss_decreases(pairs, make_config, tiny_student_dir, tmp_path):
    result = redi.train(make_config("redi", max_steps=6), pairs, tmp_path, student=tiny_student_dir)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[-1]["logps/positive"] > result.history[0]["logps/positive"]


def test_recipe_registry():
    assert recipe_for("redi") is redi.train
    with pytest.raises(ValueError, match="unknown method"):
        recipe_for("ppo")
