"""ml.generation on the tiny random teacher: batched left-padded greedy output equals one prompt at
a time, token log-probs equal a manual forward pass (temperature-scaled), k samples are seeded,
progress and stop callbacks work between batches."""
import pytest
import torch

from ml.generation import StepSampler, _trim, generate, sampled_token_logps
from ml.modeling import load_model, render_prompt

PROMPTS = [
    "What is 3 plus 4?",
    "Reverse the words: cat dog apple orange",
    "How many letters in garden?",
    "Sort the words: sun tree",
    "Which is larger: 12 or 7?",
]


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return load_model(str(tiny_teacher_dir), device="cpu")


def test_batched_greedy_equals_one_at_a_time(teacher):
    batched = generate(teacher.model, teacher.tokenizer, PROMPTS, temperature=0, max_new_tokens=6, batch_size=5)
    for prompt, outputs in zip(PROMPTS, batched):
        alone = generate(teacher.model, teacher.tokenizer, [prompt], temperature=0, max_new_tokens=6)[0]
        assert outputs[0].token_ids == alone[0].token_ids
        assert outputs[0].token_logps == pytest.approx(alone[0].token_logps, abs=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_token_logps_match_a_manual_forward_pass(teacher, temperature):
    outputs = generate(teacher.model, teacher.tokenizer, PROMPTS[:3], k=2, temperature=temperature, max_new_tokens=5)
    for prompt, samples in zip(PROMPTS, outputs):
        prompt_ids = teacher.tokenizer(render_prompt(teacher.tokenizer, prompt))["input_ids"]
        for sample in samples:
            ids = torch.tensor([prompt_ids + sample.token_ids])
            with torch.no_grad():
                logits = teacher.model(ids).logits[0, len(prompt_ids) - 1 : -1]  # (T,V) predicting each new token
            scale = temperature or 1.0
            expected = torch.log_softmax(logits / scale, -1).gather(-1, torch.tensor(sample.token_ids)[:, None])
            assert sample.token_logps == pytest.approx(expected.squeeze(-1).tolist(), abs=1e-4)
            assert len(sample.token_ids) == 5 or sample.finish_reason == "stop"


def test_k_samples_are_seeded(teacher):
    run = lambda seed: generate(teacher.model, teacher.tokenizer, PROMPTS, k=3, temperature=1.0, max_new_tokens=4, seed=seed)
    first, again, other = run(0), run(0), run(1)
    assert [len(samples) for samples in first] == [3] * len(PROMPTS)
    ids = lambda result: [[s.token_ids for s in samples] for samples in result]
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_greedy_k_repeats_the_one_greedy_answer(teacher):
    samples = generate(teacher.model, teacher.tokenizer, PROMPTS[:1], k=3, temperature=0, max_new_tokens=4)[0]
    assert len(samples) == 3 and samples[0].token_ids == samples[1].token_ids == samples[2].token_ids


def test_progress_and_stop_between_batches(teacher):
    seen = []
    generate(teacher.model, teacher.tokenizer, PROMPTS, temperature=0, max_new_tokens=2, batch_size=2,
             on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    calls = []
    stopped = generate(teacher.model, teacher.tokenizer, PROMPTS, temperature=0, max_new_tokens=2, batch_size=2,
                       should_stop=lambda: calls.append(1) or len(calls) > 1)
    assert sum(1 for samples in stopped if samples) == 2  # only the first batch ran


def test_chat_messages_are_accepted(teacher):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[0]}]
    [[output]] = generate(teacher.model, teacher.tokenizer, [messages], temperature=0, max_new_tokens=3)
    assert len(output.token_ids) == 3 and output.finish_reason == "length"


def test_trim_cuts_after_eos():
    # eos id 2: the row stops at it (kept), the padding after it is dropped.
    assert _trim([5, 2, 0, 0], [-1.0, -2.0, -3.0, -4.0], {2}) == ([5, 2], [-1.0, -2.0], "stop")
    assert _trim([5, 6], [-1.0, -2.0], {2}) == ([5, 6], [-1.0, -2.0], "length")


def test_sampled_token_logps_by_hand():
    # one step, vocab 2, logits [0, ln 3]: p = [1/4, 3/4]; at temperature 0.5 logits double -> [1/10, 9/10].
    logits = torch.tensor([[[0.0, torch.log(torch.tensor(3.0))]]])
    token = torch.tensor([[1]])
    assert sampled_token_logps(logits, token, temperature=1.0).item() == pytest.approx(torch.log(torch.tensor(0.75)).item())
    assert sampled_token_logps(logits, token, temperature=0.5).item() == pytest.approx(torch.log(torch.tensor(0.9)).item())
    assert sampled_token_logps(logits, token, temperature=0.0).item() == pytest.approx(torch.log(torch.tensor(0.75)).item())


def test_generate_cli_writes_one_row_per_prompt(tiny_teacher_dir, tmp_path):
    import json

    from ml.cli import generate as generate_cli

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p, "id": i}) for i, p in enumerate(PROMPTS[:2])) + "\n")
    out = tmp_path / "out.jsonl"
    parser = __import__("argparse").ArgumentParser()
    generate_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["generate", "--model", str(tiny_teacher_dir), "--prompts", str(prompts),
                              "--out", str(out), "--k", "2", "--max-new-tokens", "3"])
    assert args.func(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [0, 1]
    assert all(len(row["generations"]) == 2 and len(row["generations"][0]["token_ids"]) == 3 for row in rows)


def test_checkpoint_generation_config_never_leaks_in(teacher):
    """A checkpoint asking for a huge repetition penalty and suppressing the greedy answer's first
    token changes nothing: only the arguments given apply, and the config is restored afterwards."""
    plain = generate(teacher.model, teacher.tokenizer, PROMPTS[:2], temperature=0, max_new_tokens=5)
    saved = teacher.model.generation_config
    teacher.model.generation_config.repetition_penalty = 50.0
    teacher.model.generation_config.suppress_tokens = [plain[0][0].token_ids[0]]
    try:
        again = generate(teacher.model, teacher.tokenizer, PROMPTS[:2], temperature=0, max_new_tokens=5)
        assert teacher.model.generation_config is saved
    finally:
        teacher.model.generation_config.repetition_penalty = None
        teacher.model.generation_config.suppress_tokens = None
    assert [o[0].token_ids for o in again] == [o[0].token_ids for o in plain]
    assert sum((o[0].token_logps for o in again), []) == pytest.approx(sum((o[0].token_logps for o in plain), []))


def test_responses_close_with_the_templates_end_of_turn_token(demo_tokenizer):
    """A ChatML-like template ends an assistant turn with <|eot|>, not eos: generation stops on it,
    keeps it as the last token, and the training side closes responses with the same id."""
    import copy

    from ml.chat import end_of_turn_id, response_ids
    from ml.demo.configs import build_model, llama_config

    tokenizer = copy.deepcopy(demo_tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                               "{% if m['role'] == 'assistant' %}<|eot|>{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    assert eot != tokenizer.eos_token_id and end_of_turn_id(tokenizer) == eot
    assert response_ids(tokenizer, "seven")[-1] == eot
    model = build_model(llama_config(tokenizer, "tiny-teacher"), seed=3).eval()
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    head.weight.data.zero_()
    head.bias.data.zero_()
    head.bias.data[eot] = 10.0  # the model always ends its turn at once
    model.lm_head = head
    [[output]] = generate(model, tokenizer, ["What is 3 plus 4?"], temperature=0, max_new_tokens=4)
    assert output.token_ids == [eot] and output.finish_reason == "stop"


def test_prompts_are_cut_to_the_models_window(tiny_teacher_dir):
    """A window of 16 positions and 4 new tokens leave 12 for the prompt: a long prompt keeps its
    BOS and its tail (the assistant opener), says it was cut, and generation still runs."""
    from ml.chat import prompt_ids

    loaded = load_model(str(tiny_teacher_dir), device="cpu")
    loaded.model.config.max_position_embeddings = 16
    long_prompt = "Reverse the words: " + " ".join(["cat dog apple orange"] * 10)
    full = prompt_ids(loaded.tokenizer, long_prompt)
    [[output]] = generate(loaded.model, loaded.tokenizer, [long_prompt], temperature=0, max_new_tokens=4)
    assert len(full) > 12 and output.prompt_truncated and len(output.token_ids) >= 1
    cut = prompt_ids(loaded.tokenizer, long_prompt, max_length=12)
    assert len(cut) == 12 and cut[0] == full[0] and cut[1:] == full[-11:]
    # max_new_tokens that fills the whole window is cut to half of it (prompt in the other half).
    [[capped]] = generate(loaded.model, loaded.tokenizer, [long_prompt], temperature=0, max_new_tokens=16)
    assert len(capped.token_ids) <= 8 and capped.prompt_truncated


def test_top_logprobs_when_asked(teacher):
    """top_logprobs=3: each step lists 3 (id, logp) pairs, best first, and the sampled token's logp is
    one of them when it is among the three; by default nothing beyond the sampled token is kept."""
    [[output]] = generate(teacher.model, teacher.tokenizer, PROMPTS[:1], temperature=0, max_new_tokens=4, top_logprobs=3)
    assert len(output.top_logprobs) == len(output.token_ids)
    for (token, logp), step in zip(zip(output.token_ids, output.token_logps), output.top_logprobs):
        assert len(step) == 3 and step[0][1] >= step[1][1] >= step[2][1]
        assert step[0] == (token, pytest.approx(logp, abs=1e-5))  # greedy picks the top one
    [[plain]] = generate(teacher.model, teacher.tokenizer, PROMPTS[:1], temperature=0, max_new_tokens=4)
    assert plain.top_logprobs is None and plain.token_ids == output.token_ids


def test_step_sampler_draws_from_the_nucleus_records_logps_and_frees_the_step():
    """StepSampler on a hand-made (3,10) step: with top_p 0.5 every draw is the row's dominant token
    (p ~ 0.9), the recorded logp is log_softmax(logits / T) of the drawn token (before top-p), the
    token's score becomes +inf for generate's argmax, and release() frees the (N,V) storage.
    Row chunks of 1 row (row_elements=10) give the same numbers as one chunk of all rows."""
    logits = torch.zeros(3, 10)
    logits[0, 7], logits[1, 2], logits[2, 9] = 8.0, 9.0, 10.0
    for row_elements in (10, 2**19):
        torch.manual_seed(0)
        sampler = StepSampler(temperature=1.5, top_p=0.5, top_k=2, row_elements=row_elements)
        scores = logits.clone()
        returned = sampler(torch.zeros(3, 1, dtype=torch.long), scores)
        assert returned is scores and scores.argmax(-1).tolist() == [7, 2, 9]
        tokens, logps = sampler.finish(1)
        assert tokens[:, 0].tolist() == [7, 2, 9]
        expected = torch.log_softmax(logits / 1.5, -1)[torch.arange(3), tokens[:, 0]]
        assert logps[:, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
        top_ids, top_logps = sampler.top[0]
        assert top_ids[:, 0].tolist() == [7, 2, 9] and top_logps[:, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
        assert not sampler.release(torch.zeros(3, 1, dtype=torch.long)).any()
        assert scores.numel() == 0  # storage gone for every holder of the tensor


def test_tiny_top_p_samples_equal_greedy(teacher):
    """top_p so small that only the likeliest token is in the nucleus: k sampled answers at T=1 are the
    greedy answer, with the same log-probs (so StepSampler's draws are what generate returns)."""
    greedy = generate(teacher.model, teacher.tokenizer, PROMPTS[:3], temperature=0, max_new_tokens=6)
    nucleus = generate(teacher.model, teacher.tokenizer, PROMPTS[:3], k=2, temperature=1.0, top_p=1e-6,
                       max_new_tokens=6)
    for [g], samples in zip(greedy, nucleus):
        for sample in samples:
            assert sample.token_ids == g.token_ids
            assert sample.token_logps == pytest.approx(g.token_logps, abs=1e-5)
