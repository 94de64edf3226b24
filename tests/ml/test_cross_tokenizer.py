"""ml/cross_tokenizer.py: every launchable method has a mode for a mismatched pair; KD and DCKD map
onto ULD with their weights; the refused ones name the alternatives."""
from ml.config import DCKDConfig, DPOConfig, KDConfig, METHODS
from ml.cross_tokenizer import CROSS, REFUSED, RUNS, SAME, cross_config, cross_method, modes_table


def test_modes_and_configs():
    assert {mode for _, mode, _ in modes_table(True)} == {SAME}
    modes = {method: mode for method, mode, _ in modes_table(False)}
    assert set(modes) == set(METHODS)
    assert modes["sft"] == modes["dpo"] == modes["redi"] == RUNS and modes["kd"] == modes["dckd"] == CROSS
    assert modes["adpa"] == modes["adpa_plus"] == modes["taid"] == REFUSED
    uld = cross_config("dckd", DCKDConfig(alpha_w=0.3, alpha_l=0.2, top_k=20, max_steps=7))
    assert (uld.weight, uld.rejected_weight, uld.top_k, uld.max_steps, uld.nll_weight) == (0.3, 0.2, 20, 7, 1.0)
    assert cross_config("kd", KDConfig(learning_rate=3e-4)).learning_rate == 3e-4
    assert cross_method("kd", KDConfig()) == ("uld", None) and cross_method("dpo", DPOConfig()) == ("dpo", None)
    assert "ULD" in cross_method("adpa", None)[1] and "reference='base'" in cross_method(
        "dpo", DPOConfig(reference="teacher"))[1]


def test_fingerprints_agree_with_the_loaded_comparison(tmp_path, demo_tokenizer, bpe_tokenizer):
    from ml.alignment import same_tokenizer
    from ml.cross_tokenizer import same_fingerprint, tokenizer_fingerprint

    for name, tokenizer in (("a", demo_tokenizer), ("b", demo_tokenizer), ("c", bpe_tokenizer)):
        tokenizer.save_pretrained(tmp_path / name)
    assert same_fingerprint(tmp_path / "a", tmp_path / "b") is same_tokenizer(demo_tokenizer, demo_tokenizer) is True
    assert same_fingerprint(tmp_path / "a", tmp_path / "c") is same_tokenizer(demo_tokenizer, bpe_tokenizer) is False
    assert tokenizer_fingerprint("HuggingFaceTB/SmolLM2-135M") is None and same_fingerprint(tmp_path / "a", "x") is None
