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
