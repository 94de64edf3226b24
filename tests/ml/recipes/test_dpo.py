"""ml/recipes/dpo.py: TRL's DPOTrainer driven by our config and hooks. Its logged rewards/* equal
ml/losses/dpo.dpo_loss on the same batch; stop + resume continues the Trainer's own checkpoint."""
import pytest
import torch

from ml.losses.common import sequence_logps
from ml.losses.dpo import dpo_loss
from ml.modeling import load_model
from ml.recipes import dpo
from ml.recipes.batching import collate, encode, forward_logits
from ml.recipes.hooks import Hooks


def _logps(model_dir, pairs, side):
    loaded = load_model(str(model_dir), device="cpu")
    rows = [encode(loaded.tokenizer, p.prompt, getattr(p, side), 64) for p in pairs]
    batch = collate(rows, loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        return sequence_logps(forward_logits(loaded.model, batch), batch["labels"])


def test_trl_rewards_match_our_dpo_loss(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    # Teacher as reference makes the step-1 rewards non-zero (policy != reference before any update).
    config = make_config("dpo", max_steps=1, batch_size=len(pairs), reference="teacher", beta=0.1)
    events = []
    result = dpo.train(config, pairs, tmp_path, Hooks(on_progress=events.append), student=tiny_student_dir,
                       teacher=tiny_teacher_dir)
    assert result.steps == 1 and len(events) == 1
    loss, ours = dpo_loss(_logps(tiny_student_dir, pairs, "chosen"), _logps(tiny_student_dir, pairs, "rejected"),
                          _logps(tiny_teacher_dir, pairs, "chosen"), _logps(tiny_teacher_dir, pairs, "rejected"),
                          beta=0.1)
    logged = events[0].metrics
    assert abs(ours["rewards/chosen"]) > 1e-3  # a real comparison, not 0 == 0
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                 "logps/chosen", "logps/rejected"):
        assert logged[name] == pytest.approx(float(ours[name]), abs=1e-4), name
    assert events[0].loss == pytest.approx(float(loss), abs=1e-4)


def test_loss_decreases_stop_and_resume(pairs, make_config, tiny_student_dir, tmp_path):
    config = make_config("dpo", max_steps=4, learning_rate=5e-3)
    straight = dpo.train(config, pairs, tmp_path / "a", student=tiny_student_dir)
    assert straight.steps == 4 and straight.history[-1]["loss"] < straight.history[0]["loss"]
    assert (straight.final_dir / "model.safetensors").exists()

    done = []
    stopper = Hooks(on_progress=lambda e: done.append(e.step), should_stop=lambda: len(done) >= 2)
    stopped = dpo.train(config, pairs, tmp_path / "b", stopper, student=tiny_student_dir)
    assert stopped.stopped and stopped.steps == 2 and stopped.final_dir.name == "checkpoint-2"
    resumed = dpo.train(config, pairs, tmp_path / "b", student=tiny_student_dir, resume_from=stopped.final_dir)
    assert resumed.steps == 4
    losses = [h["loss"] for h in stopped.history + resumed.history]
    assert losses == pytest.approx([h["loss"] for h in straight.history], abs=1e-6)
