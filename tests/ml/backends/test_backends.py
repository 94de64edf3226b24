"""ml.backends without a GPU: the setting's values and its loud errors, "vllm" refused (not silently
replaced) where it cannot run while "auto" falls back to HF, the HF generator equal to
ml.generation (and reusing a model its caller already loaded), vLLM's sampling parameters, memory
share and output objects translated from plain objects shaped like vLLM's, and the web process
never importing the backends (so never vllm)."""
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ml import backends
from ml.backends.vllm import _sampling_params, memory_share, outputs_from_vllm
from ml.generation import generate
from ml.modeling import load_model

ROOT = Path(__file__).resolve().parents[3]


def test_the_setting_defaults_to_hf_and_refuses_unknown_values(monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)
    assert backends.backend_name() == "hf" and backends.resolve() == "hf"
    monkeypatch.setenv(backends.ENV, " VLLM ")
    assert backends.backend_name() == "vllm"
    with pytest.raises(ValueError, match="choose one of hf, vllm, auto"):
        backends.backend_name("tensorrt")


def test_vllm_where_it_cannot_run_is_refused_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(backends, "vllm_problem", lambda: "the vllm package is not installed")
    with pytest.raises(backends.BackendUnavailable, match="vllm package is not installed; set it to 'hf' or 'auto'"):
        backends.resolve("vllm")
    assert backends.resolve("auto") == "hf"
    monkeypatch.setattr(backends, "vllm_problem", lambda: None)
    assert backends.resolve("auto") == "vllm" and backends.resolve("vllm") == "vllm"


def test_vllm_problem_names_the_missing_piece_on_this_host():
    problem = backends.vllm_problem()
    assert problem is None or "vllm package" in problem or "CUDA" in problem


def test_hf_generator_is_ml_generation(tiny_teacher_dir):
    generator = backends.generator_for(str(tiny_teacher_dir), backend="hf", device="cpu")
    assert generator.name == "hf"
    got = generator.generate(["What is 3 plus 4?"], k=2, temperature=0.7, max_new_tokens=4, seed=3)
    loaded = load_model(str(tiny_teacher_dir), device="cpu")
    want = generate(loaded.model, loaded.tokenizer, ["What is 3 plus 4?"], k=2, temperature=0.7, max_new_tokens=4, seed=3)
    assert [[o.token_ids for o in s] for s in got] == [[o.token_ids for o in s] for s in want]


def test_vllm_outputs_become_generation_outputs(demo_tokenizer):
    eos = demo_tokenizer.eos_token_id
    logprob = lambda value: SimpleNamespace(logprob=value, rank=1)  # noqa: E731
    ids = demo_tokenizer("cat", add_special_tokens=False)["input_ids"]
    stopped = SimpleNamespace(token_ids=ids + [eos], logprobs=[{t: logprob(-0.5), 7: logprob(-2.0)} for t in ids]
                              + [{eos: logprob(-0.1)}])
    cut = SimpleNamespace(token_ids=ids, logprobs=[{t: logprob(-1.0)} for t in ids])
    [first, second] = outputs_from_vllm(SimpleNamespace(outputs=[stopped, cut]), demo_tokenizer, k=2,
                                        stop_ids=[eos], top_logprobs=2)
    assert first.finish_reason == "stop" and first.text == "cat" and first.token_logps[-1] == -0.1
    assert first.top_logprobs[0] == [(ids[0], -0.5), (7, -2.0)]
    assert second.finish_reason == "length" and second.token_logps == [-1.0] * len(ids)
    [greedy, copy] = outputs_from_vllm(SimpleNamespace(outputs=[cut]), demo_tokenizer, k=2, stop_ids=[eos], top_logprobs=0)
    assert copy.token_ids == greedy.token_ids and copy is not greedy and greedy.top_logprobs is None
    missing = SimpleNamespace(token_ids=ids, logprobs=None)
    assert all(math.isnan(x) for x in outputs_from_vllm(SimpleNamespace(outputs=[missing]), demo_tokenizer, k=1,
                                                        stop_ids=[eos], top_logprobs=0)[0].token_logps)


def test_the_web_process_never_imports_the_backends():
    code = ("import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'webapp.settings'); django.setup(); "
            "import webapp.urls, webapp.asgi; "
            "bad = [m for m in sys.modules if m.startswith(('ml.backends', 'vllm', 'torch'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hf_generator_reuses_a_model_the_caller_already_loaded(tiny_teacher_dir, monkeypatch):
    """Evaluations and ADPA hold an HF model for signals and judges anyway: hf (and auto where vLLM
    cannot run) generate on it instead of loading the model a second time."""
    loaded = load_model(str(tiny_teacher_dir), device="cpu")
    want = generate(loaded.model, loaded.tokenizer, ["What is 3 plus 4?"], k=1, temperature=0.0, max_new_tokens=4)
    monkeypatch.setattr(backends, "vllm_problem", lambda: "no CUDA device is visible")
    monkeypatch.setattr("ml.modeling.load_model", lambda *a, **k: pytest.fail("loaded the model a second time"))
    for backend in ("hf", "auto"):
        with backends.generator_for(str(tiny_teacher_dir), backend=backend, loaded=loaded) as generator:
            assert generator.name == "hf" and generator.loaded is loaded and generator.tokenizer is loaded.tokenizer
            got = generator.generate(["What is 3 plus 4?"], k=1, temperature=0.0, max_new_tokens=4)
        assert generator.loaded is None  # closed: its reference dropped, the caller's model untouched
        assert [o.token_ids for o in got[0]] == [o.token_ids for o in want[0]]
    with pytest.raises(backends.BackendUnavailable, match="DISTILLERY_GENERATION_BACKEND=vllm, but no CUDA device"):
        backends.generator_for(str(tiny_teacher_dir), backend="vllm", loaded=loaded)  # never silently HF


def test_vllm_sampling_params_are_explicit_and_greedy_means_one_sample():
    fake_vllm = SimpleNamespace(SamplingParams=lambda **kwargs: kwargs)  # records what vLLM would be given
    common = dict(max_new_tokens=16, seed=7, top_logprobs=0, stop_ids=[2, 5])
    greedy = _sampling_params(fake_vllm, k=4, temperature=0.0, top_p=0.9, **common)
    assert greedy == {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "max_tokens": 16, "seed": 7,
                      "logprobs": 0, "stop_token_ids": [2, 5], "repetition_penalty": 1.0, "skip_special_tokens": True}
    sampled = _sampling_params(fake_vllm, k=4, temperature=0.7, top_p=0.9, **{**common, "top_logprobs": 3})
    assert (sampled["n"], sampled["temperature"], sampled["top_p"], sampled["logprobs"]) == (4, 0.7, 0.9, 3)


def test_vllm_asks_for_no_more_memory_than_is_free():
    gib = 2**30
    assert memory_share(80 * gib, 80 * gib) == 0.85  # an empty device: the usual share
    assert memory_share(40 * gib, 80 * gib) == 0.45  # an HF teacher holds half: 90% of what is left
    assert memory_share(40 * gib, 80 * gib) * 80 * gib < 40 * gib
