"""ml/recipes/dckd.py: trains from the cached teacher signal (teacher never loaded in the loop),
the loss falls, the KL terms are reported, and stop + resume equals a straight run."""
import pytest
import torch
from safetensors.torch import load_file

from ml.modeling import TokenizerMismatchError
from ml.recipes import dckd
from ml.recipes.hooks import Hooks
from ml.teacher_signals import precompute_dckd


def test_loss_decreases_with_kl_metrics(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    config = make_config("dckd", max_steps=8, top_k=5)
    result = dckd.train(config, pairs, tmp_path / "out", student=tiny_student_dir, teacher=tiny_teacher_dir,
                        cache_dir=tmp_path / "cache")
    assert result.steps == 8 and result.history[-1]["loss"] < result.history[0]["loss"]
    assert {"nll", "kl/chosen", "kl/rejected"} <= set(result.metrics)
    assert result.history[0]["kl/chosen"] > 0


def test_precomputed_signal_needs_no_teacher_and_resume_is_exact(pairs, make_config, tiny_student_dir,
                                                                  tiny_teacher_dir, tmp_path):
    config = make_config("dckd", max_steps=4, top_k=5)
    signal = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=5, max_length=64)
    straight = dckd.train(config, pairs, tmp_path / "a", student=tiny_student_dir, signals=signal)
    done = []
    stopper = Hooks(on_progress=lambda e: done.append(e), should_stop=lambda: len(done) >= 2)
    stopped = dckd.train(config, pairs, tmp_path / "b", stopper, student=tiny_student_dir, signals=signal.path)
    resumed = dckd.train(config, pairs, tmp_path / "b", student=tiny_student_dir, signals=signal,
                         resume_from=stopped.final_dir)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a, b = load_file(str(straight.final_dir / "model.safetensors")), load_file(str(resumed.final_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_a_teacher_with_another_tokenizer(pairs, make_config, tiny_student_dir, tmp_path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(str(tiny_student_dir))
    other.add_tokens(["<extra-token>"])
    other_dir = tmp_path / "other"
    other.save_pretrained(other_dir)
    with pytest.raises(TokenizerMismatchError):
        dckd.train(make_config("dckd", max_steps=1), pairs, tmp_path / "out", student=tiny_student_dir,
                   teacher=other_dir, cache_dir=tmp_path / "cache")


def test_temperature_reaches_the_teacher_side_and_a_mismatched_cache_is_refused(pairs, make_config, tiny_student_dir,
                                                                                 tiny_teacher_dir, tmp_path):
    # issue 10 B20: a run at T=2 fills (and reads) a cache computed at T=2, never the T=1 one.
    config = make_config("dckd", max_steps=1, top_k=5, temperature=2.0)
    dckd.train(config, pairs, tmp_path / "out", student=tiny_student_dir, teacher=tiny_teacher_dir,
               cache_dir=tmp_path / "cache")
    hot = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path / "cache", top_k=5, max_length=64,
                          temperature=2.0)
    assert hot.cache_hit  # the run above wrote exactly this file
    cold = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path / "cache", top_k=5, max_length=64)
    with pytest.raises(ValueError, match="temperature"):
        dckd.train(config, pairs, tmp_path / "again", student=tiny_student_dir, signals=cold)
