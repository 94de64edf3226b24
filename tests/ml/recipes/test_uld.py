"""ml/recipes/uld.py on a mismatched pair: the tiny demo-tokenizer teacher into a tiny byte-level
BPE student. ULD falls over a few steps from the full teacher vocabulary and from its top-K alone,
and with a rejected term (DCKD's cross-tokenizer mode); the same-vocabulary recipes refuse the pair."""
import pytest

from ml.modeling import TokenizerMismatchError
from ml.recipes import dckd, kd, recipe_for, uld


@pytest.mark.parametrize("overrides", [{}, {"top_k": 5, "rejected_weight": 0.5}], ids=["full", "topk-dckd"])
def test_uld_across_tokenizers(overrides, pairs, make_config, tiny_bpe_student_dir, tiny_teacher_dir, tmp_path):
    result = uld.train(make_config("uld", max_steps=6, **overrides), pairs, tmp_path, student=tiny_bpe_student_dir,
                       teacher=tiny_teacher_dir)
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"] and last["uld/chosen"] < first["uld/chosen"]
    assert 0 < first["one_to_one_share"] < 1  # the two tokenizations really split the answers differently
    assert ("uld/rejected" in last) == bool(overrides)
    assert recipe_for("uld") is uld.train


def test_single_vocabulary_recipes_refuse_the_pair(pairs, make_config, tiny_bpe_student_dir, tiny_teacher_dir,
                                                   tmp_path):
    with pytest.raises(TokenizerMismatchError, match="share one tokenizer"):
        kd.train(make_config("kd", max_steps=1), pairs, tmp_path / "kd", student=tiny_bpe_student_dir,
                 teacher=tiny_teacher_dir)
    with pytest.raises(TokenizerMismatchError, match="share one tokenizer"):
        dckd.train(make_config("dckd", max_steps=1), pairs, tmp_path / "dckd", student=tiny_bpe_student_dir,
                   teacher=tiny_teacher_dir, cache_dir=tmp_path / "cache")
