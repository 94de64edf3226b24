"""ml/teacher_signals.py on the tiny fixture models: layout and dtypes of the cached files, agreement with a
direct forward pass, the missing-token floor, and cache hits keyed by content."""
import pytest
import torch

from ml.data import PreferencePair
from ml.demo.tasks import generate_tasks
from ml.modeling import load_model
from ml.teacher_signals import adpa_rows, dckd_rows, load_signals, model_identity, precompute_adpa, precompute_dckd

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs():
    return [PreferencePair(t.prompt, t.answer, "wrong " + t.answer) for t in generate_tasks(4, seed=5)]


def test_dckd_signal_layout_and_values(pairs, tiny_teacher_dir, tmp_path):
    signal = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=5, max_length=64, batch_size=3)
    tensors, meta = load_signals(signal.path)
    assert not signal.cache_hit and signal.num_rows == 4 and meta["top_k"] == 5
    assert tensors["chosen_topk_ids"].dtype == torch.int32 and tensors["chosen_topk_probs"].dtype == torch.float16
    # 5 ids x 4 bytes + 5 probs x 2 bytes = 30 bytes per token; the file adds token ids and a header
    assert signal.size_bytes_per_token == 30 and signal.size_bytes > 30 * signal.num_tokens

    rows = dckd_rows(signal.path)
    teacher = load_model(str(tiny_teacher_dir), device="cpu")
    first = rows[0]["chosen"]
    ids = torch.tensor([first.prompt_ids + first.response_ids])
    probs = torch.softmax(teacher.model(input_ids=ids).logits[0].float(), -1)  # (L,V)
    start = len(first.prompt_ids) - 1
    top_probs, top_ids = probs[start: start + len(first.response_ids)].topk(5, -1)
    assert torch.equal(rows[0]["chosen_topk_ids"], top_ids)
    assert torch.allclose(rows[0]["chosen_topk_probs"], top_probs, atol=1e-3)
    assert first.response_ids[-1] == teacher.tokenizer.eos_token_id
    assert rows[0]["rejected_topk_ids"].shape == (len(rows[0]["rejected"].response_ids), 5)


def test_second_call_is_a_cache_hit_and_key_follows_content(pairs, tiny_teacher_dir, tiny_student_dir, tmp_path):
    first = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=4, max_length=64)
    mtime = first.path.stat().st_mtime_ns
    again = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=4, max_length=64)
    assert again.cache_hit and again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=3, max_length=64).key != first.key
    assert precompute_dckd(tiny_student_dir, pairs, cache_dir=tmp_path, top_k=4, max_length=64).key != first.key
    assert precompute_dckd(tiny_teacher_dir, pairs[:3], cache_dir=tmp_path, top_k=4, max_length=64).key != first.key


def test_model_identity_hashes_files(tiny_teacher_dir, tiny_student_dir):
    teacher = model_identity(tiny_teacher_dir)
    assert "model.safetensors" in teacher["files"] and "tokenizer.json" in teacher["files"]
    assert teacher != model_identity(tiny_student_dir)
    assert model_identity("org/some-model") == {"source": "org/some-model", "revision": None}


def test_adpa_same_teacher_twice_gives_zero_advantage(pairs, tiny_teacher_dir, tiny_student_dir, tmp_path):
    # pi_dpo == pi_sft: every top-K token is found in the other's top-K with the same log-prob, so A = 0.
    signal = precompute_adpa(tiny_teacher_dir, tiny_teacher_dir, tiny_student_dir, pairs, cache_dir=tmp_path,
                             top_k=4, max_length=64, max_new_tokens=6)
    rows = adpa_rows(signal.path)
    assert len(rows) == 4 and all(r["advantages"].abs().max() == 0 for r in rows)
    assert all(1 <= len(r["student"].response_ids) <= 6 for r in rows)
    assert rows[0]["topk_ids"].shape == (len(rows[0]["student"].response_ids), 4)
    assert rows[0]["chosen"].response_ids[-1] == 2  # the demo eos


def test_adpa_advantages_match_direct_computation(pairs, tiny_teacher_dir, tiny_student_dir, tmp_path):
    # pi_dpo = teacher, pi_sft = student: A = log p_T(v) - log p_S(v) for v in the teacher's top-K, where
    # v missing from the student's top-K takes the student's smallest top-K log-prob.
    signal = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, cache_dir=tmp_path,
                             top_k=4, max_length=64, max_new_tokens=6)
    row = adpa_rows(signal.path)[1]
    ids = torch.tensor([row["student"].prompt_ids + row["student"].response_ids])
    start, n = len(row["student"].prompt_ids) - 1, len(row["student"].response_ids)
    t_lp = torch.log_softmax(load_model(str(tiny_teacher_dir), device="cpu").model(input_ids=ids).logits[0], -1)
    s_lp = torch.log_softmax(load_model(str(tiny_student_dir), device="cpu").model(input_ids=ids).logits[0], -1)
    for j in range(n):
        d_lp, d_ids = t_lp[start + j].topk(4)
        s_top_lp, s_top_ids = s_lp[start + j].topk(4)
        expected = [d_lp[i] - (s_lp[start + j, v] if v in s_top_ids else s_top_lp.min()) for i, v in enumerate(d_ids)]
        assert torch.equal(row["topk_ids"][j], d_ids)
        assert torch.allclose(row["advantages"][j], torch.stack(expected).float(), atol=2e-2)
    assert precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, cache_dir=tmp_path,
                           top_k=4, max_length=64, max_new_tokens=6).cache_hit


def test_dckd_teacher_side_is_computed_at_the_temperature_and_keyed_by_it(pairs, tiny_teacher_dir, tmp_path):
    # issue 10 B20: the cached probabilities are softmax(z / T) of the teacher, not softmax(z).
    cold = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=5, max_length=64)
    hot = precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=5, max_length=64, temperature=2.0)
    assert hot.key != cold.key and not hot.cache_hit
    assert precompute_dckd(tiny_teacher_dir, pairs, cache_dir=tmp_path, top_k=5, max_length=64,
                           temperature=2.0).cache_hit
    row = dckd_rows(hot.path)[0]
    first = row["chosen"]
    teacher = load_model(str(tiny_teacher_dir), device="cpu")
    with torch.no_grad():
        logits = teacher.model(input_ids=torch.tensor([first.prompt_ids + first.response_ids])).logits[0].float()
    start = len(first.prompt_ids) - 1
    span = slice(start, start + len(first.response_ids))
    at_two, ids = torch.softmax(logits[span] / 2.0, -1).topk(5, -1)
    assert torch.equal(row["chosen_topk_ids"], ids)
    assert torch.allclose(row["chosen_topk_probs"], at_two, atol=1e-3)
    at_one = torch.softmax(logits[span], -1).gather(-1, ids)
    assert not torch.allclose(row["chosen_topk_probs"], at_one, atol=1e-3)  # the old T=1 cache differs
    assert load_signals(hot.path)[1]["temperature"] == 2.0


def test_adpa_cache_is_keyed_by_the_floor_and_applies_it(pairs, tiny_teacher_dir, tiny_student_dir, tmp_path):
    # issue 10 B21: sft_floor reaches the precompute. A floor of 0.5 lifts every top-K probability of the
    # tiny random models (all far below 0.5) to 0.5 on both sides, so every advantage is exactly 0.
    kwargs = dict(cache_dir=tmp_path, top_k=4, max_length=64, max_new_tokens=6)
    default = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, **kwargs)
    floored = precompute_adpa(tiny_teacher_dir, tiny_student_dir, tiny_student_dir, pairs, sft_floor=0.5, **kwargs)
    assert floored.key != default.key and not floored.cache_hit
    assert any(r["advantages"].abs().max() > 0 for r in adpa_rows(default.path))
    assert all(r["advantages"].abs().max() == 0 for r in adpa_rows(floored.path))
    assert load_signals(floored.path)[1]["sft_floor"] == 0.5


def test_adpa_student_responses_go_through_the_generation_backend(pairs, tiny_teacher_dir, tiny_student_dir,
                                                                   tmp_path, monkeypatch):
    """hf and auto (vLLM unable to run) write the same greedy student responses as HF generate did;
    an explicit vllm that cannot run is refused before anything is written, never replaced by HF."""
    from ml import backends
    from ml.generation import generate
    from ml.recipes.batching import encode_prompt, fit

    monkeypatch.setattr(backends, "vllm_problem", lambda: "no CUDA device is visible")
    student = load_model(str(tiny_student_dir), device="cpu")
    prompts = [p.prompt for p in pairs]
    greedy = generate(student.model, student.tokenizer, prompts, k=1, temperature=0.0, max_new_tokens=6, seed=0)
    want = [fit(encode_prompt(student.tokenizer, p), s[0].token_ids, 64).response_ids for p, s in zip(prompts, greedy)]
    for backend, model in (("hf", tiny_student_dir), ("auto", tiny_student_dir), ("hf", student)):
        signal = precompute_adpa(tiny_teacher_dir, tiny_teacher_dir, model, pairs, cache_dir=tmp_path / backend
                                 / type(model).__name__, top_k=4, max_length=64, max_new_tokens=6,
                                 generation_backend=backend)
        assert not signal.cache_hit and load_signals(signal.path)[1]["student_generation"] == "hf"
        assert [r["student"].response_ids for r in adpa_rows(signal.path)] == want
    with pytest.raises(backends.BackendUnavailable, match="=vllm, but no CUDA device is visible"):
        precompute_adpa(tiny_teacher_dir, tiny_teacher_dir, tiny_student_dir, pairs, cache_dir=tmp_path / "vllm",
                        top_k=4, max_length=64, max_new_tokens=6, generation_backend="vllm")
    assert not (tmp_path / "vllm").exists()
