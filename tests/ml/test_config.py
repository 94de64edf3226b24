"""ml/config.py: defaults from ALGORITHMS.md, validation errors that name the field, round trips,
and the standard-library-only promise the web app relies on."""
import dataclasses
import subprocess
import sys

import pytest

from ml.config import (
    METHODS, ADPAConfig, ADPAPlusConfig, ConfigError, DCKDConfig, DPOConfig, REDIConfig, TAIDConfig,
    config_from_dict, config_schema, config_to_dict, method_of,
)


def test_defaults_follow_algorithms_md():
    dckd, adpa, dpo = DCKDConfig(), ADPAConfig(), DPOConfig()
    assert (dckd.alpha_w, dckd.alpha_l, dckd.nll_weight, dckd.temperature, dckd.top_k) == (0.1, 0.1, 1.0, 1.0, 50)
    assert (adpa.weight, adpa.nll_weight, adpa.top_k, adpa.advantage_clip) == (1.6, 1.0, 50, "released")
    assert (dpo.beta, dpo.reference, dpo.precompute_ref_log_probs) == (0.1, "base", True)
    assert (dckd.learning_rate, dckd.lr_scheduler, dckd.warmup_ratio, dckd.num_epochs) == (5e-7, "cosine", 0.1, 1)
    assert dckd.batch_size * dckd.grad_accum == 128  # released global batch
    assert REDIConfig().alpha == 0.8
    assert (TAIDConfig().t_start, TAIDConfig().alpha, TAIDConfig().beta) == (0.4, 5e-4, 0.99)


def test_every_method_builds_from_empty_dict_and_round_trips():
    for method, cls in METHODS.items():
        config = config_from_dict(method, {})
        assert type(config) is cls and method_of(config) == method
        assert config_from_dict(method, config_to_dict(config)) == config


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DCKDConfig().alpha_w = 1.0


def test_every_field_has_help_text():
    for method in METHODS:
        for entry in config_schema(method):
            assert entry["help"], (method, entry["name"])


def test_nested_adpa_plus():
    config = config_from_dict("adpa_plus", {"dckd": {"alpha_w": 0.3}, "adpa": {"weight": 2}})
    assert isinstance(config, ADPAPlusConfig)
    assert config.dckd.alpha_w == 0.3 and config.adpa.weight == 2.0 and config.adpa.top_k == 50


@pytest.mark.parametrize("method,data,bad_field,words", [
    ("dckd", {"alpha_x": 1}, "alpha_x", "unknown field"),
    ("dckd", {"top_k": "50"}, "top_k", "expected int"),
    ("dckd", {"top_k": 2.5}, "top_k", "expected int"),
    ("dpo", {"precompute_ref_log_probs": 1}, "precompute_ref_log_probs", "expected bool"),
    ("dpo", {"beta": True}, "beta", "expected float"),
    ("dckd", {"alpha_w": -0.1}, "alpha_w", "out of range"),
    ("dckd", {"learning_rate": 0}, "learning_rate", "out of range"),
    ("sft", {"warmup_ratio": 1.5}, "warmup_ratio", "out of range"),
    ("kd", {"kind": "sideways"}, "kind", "not one of"),
    ("adpa", {"advantage_clip": "soft"}, "advantage_clip", "not one of"),
    ("adpa_plus", {"adpa": {"weight": -1}}, "adpa.weight", "out of range"),
    ("adpa_plus", {"dckd": 3}, "dckd", "expected a mapping"),
    ("taid", {"t_start": 0.9, "t_end": 0.5}, "t_end", "below t_start"),
    ("bogus", {}, "method", "unknown method"),
])
def test_bad_values_raise_naming_the_field(method, data, bad_field, words):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(method, data)
    assert caught.value.field == bad_field
    assert bad_field.split(".")[-1] in str(caught.value) and words in str(caught.value)


def test_int_accepted_for_float_field():
    assert config_from_dict("dckd", {"alpha_w": 1}).alpha_w == 1.0


def test_coerce_strings_for_forms_and_yaml():
    config = config_from_dict("dpo", {"beta": "0.05", "batch_size": "4", "lora": "on",
                                      "learning_rate": "5e-7"}, coerce_strings=True)
    assert (config.beta, config.batch_size, config.lora, config.learning_rate) == (0.05, 4, True, 5e-7)
    with pytest.raises(ConfigError, match="batch_size"):
        config_from_dict("dpo", {"batch_size": "four"}, coerce_strings=True)


def test_imports_no_third_party_module():
    code = ("import sys, ml.config; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'trl', 'numpy', 'django')]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)
