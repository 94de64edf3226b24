"""ml/recipes/adpa.py and adpa_plus.py: ADPA trains from the cached advantages; ADPA+ runs DCKD then
ADPA from the DCKD student, regenerating the student responses, and skips a finished stage."""
from ml.recipes import adpa, adpa_plus
from ml.config import ADPAPlusConfig
from ml.recipes.hooks import Hooks
from ml.teacher_signals import precompute_adpa


def test_adpa_loss_decreases(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    # pi_dpo = teacher, pi_sft = student: advantages are non-trivial on the tiny models.
    config = make_config("adpa", max_steps=6, top_k=5, max_new_tokens=6, advantage_clip="none", weight=0.5)
    events = []
    result = adpa.train(config, pairs, tmp_path / "out", Hooks(on_progress=events.append), student=tiny_student_dir,
                        teacher=tiny_teacher_dir, teacher_sft=tiny_student_dir, cache_dir=tmp_path / "cache")
    assert [e.step for e in events] == list(range(1, 7))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert {"nll", "advantage/expected", "advantage/raw_mean"} <= set(result.metrics)


def test_adpa_released_clip_reads_same_cache(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    signal = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, cache_dir=tmp_path,
                             top_k=5, max_length=64, max_new_tokens=6)
    result = adpa.train(make_config("adpa", max_steps=2, top_k=5, max_new_tokens=6), pairs, tmp_path / "out",
                        student=tiny_student_dir, teacher=tiny_teacher_dir, teacher_sft=tiny_student_dir,
                        cache_dir=tmp_path)
    assert result.steps == 2
    again = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, cache_dir=tmp_path,
                            top_k=5, max_length=64, max_new_tokens=6)
    assert again.cache_hit and again.key == signal.key


def test_adpa_plus_pipeline_and_stage_cache(pairs, make_config, tiny_student_dir, tiny_teacher_dir, tmp_path):
    config = ADPAPlusConfig(dckd=make_config("dckd", max_steps=2, top_k=5),
                            adpa=make_config("adpa", max_steps=2, top_k=5, max_new_tokens=6))
    events = []
    kwargs = dict(student=tiny_student_dir, teacher=tiny_teacher_dir, teacher_sft=tiny_student_dir,
                  cache_dir=tmp_path / "cache")
    result = adpa_plus.train(config, pairs, tmp_path / "run", Hooks(on_progress=events.append), **kwargs)
    assert [e.step for e in events] == [1, 2, 3, 4] and {e.total_steps for e in events} == {4}
    assert "dckd/kl/chosen" in events[0].metrics and "adpa/advantage/expected" in events[-1].metrics
    assert result.steps == 4 and result.final_dir == tmp_path / "run" / "adpa" / "final"
    # ADPA's signal was computed from the DCKD student, not the original one.
    adpa_signals = list((tmp_path / "cache" / "adpa").glob("*.safetensors"))
    assert len(adpa_signals) == 1

    events.clear()
    adpa_plus.train(config, pairs, tmp_path / "run", Hooks(on_progress=events.append), **kwargs)
    assert [e.step for e in events] == [3, 4]  # DCKD stage skipped: same inputs, output present


def test_sft_floor_keys_the_cache_and_a_mismatched_file_is_refused(pairs, make_config, tiny_student_dir,
                                                                   tiny_teacher_dir, tmp_path):
    # issue 10 B21: config.sft_floor reaches the precompute (and its key); a file with another floor is refused.
    import pytest

    config = make_config("adpa", max_steps=1, top_k=5, max_new_tokens=6, sft_floor=1e-3)
    adpa.train(config, pairs, tmp_path / "out", student=tiny_student_dir, teacher=tiny_teacher_dir,
               teacher_sft=tiny_student_dir, cache_dir=tmp_path / "cache")
    kwargs = dict(cache_dir=tmp_path / "cache", top_k=5, max_length=64, max_new_tokens=6)
    assert precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, sft_floor=1e-3,
                           **kwargs).cache_hit
    default = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, **kwargs)
    assert not default.cache_hit
    with pytest.raises(ValueError, match="sft_floor"):
        adpa.train(config, pairs, tmp_path / "again", student=tiny_student_dir, signals=default)
