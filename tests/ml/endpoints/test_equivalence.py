"""Equivalence of the endpoint teacher and the in-worker teacher on the same weights (issue 17.7): the
demo teacher served by the real vLLM test server (float32, tests/vllm_server.py) against the same
directory loaded by ml.modeling.load_model, on the same teacher-forced student-tokenized rows.

Server side: ml.endpoints.signals (prompt_logprobs=K on the prompt+response ids, parsed by
topk_from_prompt_logprobs), exactly what precompute_dckd_endpoint writes. In-worker side:
ml.teacher_signals.topk_logprobs, what precompute_dckd writes. Per response position: the share of
the K ids both sides list (overlap), whether their top-1 agrees, and |p_server - p_worker| on the
shared ids. Measured on the demo teacher (float32 both sides, K=50, 32 rows / 110 positions):
overlap 1.000 everywhere, top-1 110/110, max |Δp| 6.6e-7, mean 2.6e-9. The test asserts overlap
>= 0.98 at every position, top-1 agreement on every position whose in-worker top-1 leads by more
than 1e-3, and max |Δp| <= 1e-4: float32 on both sides differs only by kernel summation order.
A bf16 server (measured by hand, not run here) against the float32 worker: overlap mean 0.997
(min 0.96: ids near the 50th place swap), top-1 110/110, max |Δp| 0.020, mean 5.6e-5 — inside
what bf16 does in-worker (HF bf16 vs HF float32 on the same rows: 0.997 / 0.96 / 110/110 / 0.027 /
6.1e-5). Figures and commands: docs/benchmarks.md.

Judge verdicts: ml.endpoints.judge.EndpointJudge on the white-box server (the probe's capability:
the answer labels' exact log-probs from prompt_logprobs, prompt tokenized by the server's template)
against ml.judges.GenerativeJudge (the answer tokens' logits) on the same weights and items, both
through judge_pairs. The demo teacher was never taught to judge: with the default labels "A"/"B" it
puts ~0 mass on them, every verdict is marked low_answer_mass, and P still follows the two labels'
logits exactly: 12/12 flags equal, max |ΔP| 1.3e-6. With two words it does start judge answers with
("apple"/"bird", answer mass 0.18-1.0) half the verdicts fall below the 0.5 mark: flags 12/12 equal,
max |ΔP| 2.5e-7, max |Δmass| 2.4e-6. (Black-box path, top_logprobs of the chat answer, on the real
SmolLM2-135M-Instruct pair, labels A/B: 8/8 agree, max |ΔP| 2.4e-6; docs/benchmarks.md.)"""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOP_K = 50
MIN_OVERLAP = 0.98
MAX_PROB_ERROR = 1e-4
TOP1_MARGIN = 1e-3
JUDGE_LABELS = ("apple", "bird")  # words the demo teacher starts judge answers with (see above)


def compare_topk(worker: list, server: list, *, k: int) -> dict:
    """worker, server: per row (ids (R,K), logps (R,K)) -> figures over all positions: overlap
    (mean, min), top-1 agreement (where the worker's top-1 leads its runner-up by > TOP1_MARGIN in
    probability, and over all), max/mean |Δp| on the ids both list."""
    overlaps, errors, top1, top1_clear, clear = [], [], 0, 0, 0
    for (w_ids, w_lp), (s_ids, s_lp) in zip(worker, server, strict=True):
        for w_row, w_p, s_row, s_p in zip(w_ids.tolist(), w_lp.exp().tolist(), s_ids.tolist(), s_lp.exp().tolist(),
                                          strict=True):
            w, s = dict(zip(w_row, w_p)), dict(zip(s_row, s_p))
            shared = set(w) & set(s)
            overlaps.append(len(shared) / k)
            errors += [abs(w[t] - s[t]) for t in shared]
            same = w_row[0] == s_row[0]
            top1 += same
            if w_p[0] - w_p[1] > TOP1_MARGIN:
                clear += 1
                top1_clear += same
    return {"positions": len(overlaps), "overlap_mean": sum(overlaps) / len(overlaps), "overlap_min": min(overlaps),
            "top1": top1, "top1_clear": top1_clear, "clear": clear,
            "max_prob_error": max(errors), "mean_prob_error": sum(errors) / len(errors)}


def test_compare_topk_counts_overlap_and_error():
    worker = [(torch.tensor([[1, 2, 3]]), torch.tensor([[0.5, 0.3, 0.2]]).log())]
    server = [(torch.tensor([[1, 3, 4]]), torch.tensor([[0.52, 0.2, 0.1]]).log())]
    figures = compare_topk(worker, server, k=3)
    assert figures["overlap_mean"] == pytest.approx(2 / 3)
    assert figures["top1"] == 1 and figures["clear"] == 1
    assert figures["max_prob_error"] == pytest.approx(0.02, abs=1e-6)


def _rows(demo_world_dir, tokenizer):
    from ml.recipes.batching import encode

    tasks = [json.loads(line) for line in (demo_world_dir / "prompts" / "eval.jsonl").read_text().splitlines()[:24]]
    rows = [encode(tokenizer, t["prompt"], t["answer"], 256) for t in tasks]  # what the teacher would say
    # and answers it would not: reversed words plus a stray one, so low-probability states are scored too
    rows += [encode(tokenizer, t["prompt"], " ".join(reversed(t["answer"].split())) + " cat", 256) for t in tasks[:8]]
    return rows


def test_endpoint_topk_matches_the_in_worker_teacher(vllm_server, demo_world_dir):
    from ml.endpoints.client import EndpointClient
    from ml.endpoints.signals import check_tokenizer_alignment, topk_from_prompt_logprobs
    from ml.endpoints.spec import EndpointSpec
    from ml.modeling import load_model
    from ml.teacher_signals import topk_logprobs

    torch.set_num_threads(1)
    loaded = load_model(str(vllm_server.model_dir), device="cpu")
    tokenizer = loaded.tokenizer
    rows = _rows(demo_world_dir, tokenizer)
    worker = topk_logprobs(loaded.model, rows, k=TOP_K, pad_id=tokenizer.pad_token_id, batch_size=8)

    spec = EndpointSpec(vllm_server.base_url, vllm_server.model, vllm_server.env_name, concurrency=2)
    with EndpointClient(spec, env={vllm_server.env_name: vllm_server.api_key}) as client:
        check_tokenizer_alignment(client, tokenizer)

        def score(row):
            ids = row.prompt_ids + row.response_ids
            body = client.completions({"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": TOP_K})
            return topk_from_prompt_logprobs(body["choices"][0]["prompt_logprobs"], len(row.prompt_ids),
                                             len(row.response_ids), TOP_K)

        server = client.map(score, rows)

    figures = compare_topk(worker, server, k=TOP_K)
    print(f"\nendpoint vs in-worker top-{TOP_K} (float32): {figures}")
    assert figures["positions"] == sum(len(r.response_ids) for r in rows)
    assert figures["overlap_min"] >= MIN_OVERLAP, figures
    assert figures["top1_clear"] == figures["clear"], figures
    assert figures["max_prob_error"] <= MAX_PROB_ERROR, figures


@pytest.mark.parametrize("labels", [("A", "B"), JUDGE_LABELS])
def test_endpoint_judge_verdicts_match_the_in_worker_judge(vllm_server, demo_world_dir, labels):
    from ml.endpoints.client import EndpointClient
    from ml.endpoints.judge import EndpointJudge
    from ml.endpoints.probe import probe
    from ml.endpoints.spec import EndpointSpec
    from ml.judges import GenerativeJudge, JudgeItem, judge_pairs, verdict_outcome
    from ml.modeling import load_model

    torch.set_num_threads(1)
    loaded = load_model(str(vllm_server.model_dir), device="cpu")
    tasks = [json.loads(line) for line in (demo_world_dir / "prompts" / "eval.jsonl").read_text().splitlines()[:12]]
    items = [JudgeItem(t["prompt"], t["answer"], " ".join(reversed(t["answer"].split())) + " cat") for t in tasks]
    worker = judge_pairs(GenerativeJudge(loaded.model, loaded.tokenizer, answer_tokens=labels), items)
    spec = EndpointSpec(vllm_server.base_url, vllm_server.model, vllm_server.env_name, concurrency=2)
    with EndpointClient(spec, env={vllm_server.env_name: vllm_server.api_key}) as client:
        judge = EndpointJudge(client, labels=labels, capability=probe(client))
        assert judge.exact
        endpoint = judge_pairs(judge, items)

    low = [bool(v.details.get("low_answer_mass")) for v in worker]
    assert all(low) if labels == ("A", "B") else 0 < sum(low) < len(low)  # both sides of the mark are compared
    for w, e in zip(worker, endpoint, strict=True):
        assert e.order == "both" and e.details["p_source_ab"] == "prompt_logprobs", e.details
        assert e.p_a_over_b == pytest.approx(w.p_a_over_b, abs=MAX_PROB_ERROR), (w, e)
        for key in ("p_ab", "p_ba", "answer_mass_ab", "answer_mass_ba"):
            assert e.details[key] == pytest.approx(w.details[key], abs=MAX_PROB_ERROR), key
        assert bool(e.details.get("low_answer_mass")) == bool(w.details.get("low_answer_mass"))
        if abs(w.p_a_over_b - 0.5) > MAX_PROB_ERROR:
            assert verdict_outcome(e) == verdict_outcome(w)
