"""ml/recipes/sft.py and, through it, the library trainer (ml/recipes/trainer.py): the loss falls, hooks
see every step, a stop leaves a resumable checkpoint, and stop + resume equals one straight run."""
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from ml.recipes import sft
from ml.recipes.hooks import Hooks


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_loss_decreases_and_hooks_see_every_step(pairs, make_config, tiny_student_dir, tmp_path):
    events = []
    result = sft.train(make_config("sft", max_steps=8), pairs, tmp_path, Hooks(on_progress=events.append),
                       student=tiny_student_dir)
    assert [e.step for e in events] == list(range(1, 9)) and result.steps == 8 and not result.stopped
    assert all(e.total_steps == 8 and e.tokens_per_s > 0 and e.memory_mb > 0 for e in events)
    assert events[0].epoch == 0.25  # 8 rows / batch 2 = 4 steps per epoch
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < first, (first, last)
    assert "nll" in events[-1].metrics and "grad_norm" in events[-1].metrics
    model = AutoModelForCausalLM.from_pretrained(result.final_dir, use_safetensors=True)
    assert (result.final_dir / "tokenizer.json").exists() and model is not None


def test_stop_then_resume_equals_straight_run(pairs, make_config, tiny_student_dir, tmp_path):
    config = make_config("sft", max_steps=4, lr_scheduler="cosine", warmup_ratio=0.25)
    straight = sft.train(config, pairs, tmp_path / "a", student=tiny_student_dir)

    done = []
    stop_after_two = Hooks(on_progress=lambda e: done.append(e.step), should_stop=lambda: len(done) >= 2)
    stopped = sft.train(config, pairs, tmp_path / "b", stop_after_two, student=tiny_student_dir)
    assert stopped.stopped and stopped.steps == 2 and stopped.final_dir.name == "checkpoint-2"
    resumed = sft.train(config, pairs, tmp_path / "b", student=tiny_student_dir, resume_from=stopped.final_dir)

    assert resumed.steps == 4 and not resumed.stopped
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in straight.history]
    a, b = _weights(straight.final_dir), _weights(resumed.final_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_save_every_steps_writes_checkpoints(pairs, make_config, tiny_student_dir, tmp_path):
    result = sft.train(make_config("sft", max_steps=4, save_every_steps=2), pairs, tmp_path,
                       student=tiny_student_dir)
    assert [p.name for p in result.checkpoints] == ["checkpoint-2"]
    assert all((result.checkpoints[0] / f).exists() for f in ("trainer_state.json", "optimizer.pt", "training_state.json"))


def test_lora_trains_adapter_and_saves_merged_model(pairs, make_config, tiny_student_dir, tmp_path):
    result = sft.train(make_config("sft", max_steps=2, lora=True, lora_r=2, lora_alpha=4), pairs, tmp_path,
                       student=tiny_student_dir)
    base, tuned = _weights(tiny_student_dir), _weights(result.final_dir)
    assert base.keys() == tuned.keys()  # merged: a plain model dir, no lora_* keys
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("proj" in k for k in changed)


def test_sequence_level_kd_trains_on_teacher_generations(pairs, make_config, tiny_student_dir, tiny_teacher_dir,
                                                         tmp_path):
    from ml.recipes.sft import teacher_targets

    targets = teacher_targets(tiny_teacher_dir, [p.prompt for p in pairs[:2]], max_new_tokens=4, seed=0, batch_size=2)
    assert [t.prompt for t in targets] == [p.prompt for p in pairs[:2]]
    config = make_config("sft", max_steps=2, target="teacher", max_new_tokens=4)
    result = sft.train(config, pairs, tmp_path, student=tiny_student_dir, teacher=tiny_teacher_dir)
    assert result.steps == 2


def test_gradient_checkpointing_from_the_library_gives_the_same_steps(pairs, make_config, tiny_student_dir,
                                                                      tmp_path):
    # The Trainer recomputes activations in the backward pass; the maths (and so the losses) must not change.
    plain = sft.train(make_config("sft", max_steps=3), pairs, tmp_path / "a", student=tiny_student_dir)
    recomputed = sft.train(make_config("sft", max_steps=3, gradient_checkpointing=True), pairs, tmp_path / "b",
                           student=tiny_student_dir)
    assert [h["loss"] for h in recomputed.history] == pytest.approx([h["loss"] for h in plain.history], rel=1e-5)


def test_grad_accumulation_matches_one_big_batch(pairs, make_config, tiny_student_dir, tmp_path):
    # The seeded order gives the one accumulated step (2 micro-batches of 2) the rows of the first two plain
    # steps (batch 2); at lr ~0 those two see the same weights, so the step reports the mean of their losses.
    accumulated = sft.train(make_config("sft", max_steps=1, grad_accum=2), pairs, tmp_path / "a",
                            student=tiny_student_dir)
    assert accumulated.steps == 1 and accumulated.history[0]["step"] == 1
    halves = sft.train(make_config("sft", max_steps=2, learning_rate=1e-12), pairs, tmp_path / "b",
                       student=tiny_student_dir)
    expected = (halves.history[0]["loss"] + halves.history[1]["loss"]) / 2
    assert accumulated.history[0]["loss"] == pytest.approx(expected, rel=1e-4)


def test_a_checkpoint_of_the_old_home_loop_is_refused_with_a_clear_error(pairs, make_config, tiny_student_dir,
                                                                         tmp_path):
    old = tmp_path / "checkpoint-2"
    old.mkdir()
    (old / "trainer_state.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="old home loop"):
        sft.train(make_config("sft", max_steps=4), pairs, tmp_path / "out", student=tiny_student_dir, resume_from=old)
