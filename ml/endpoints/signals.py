"""Teacher signals from a white-box endpoint (vLLM): DCKD's teacher side (ALGORITHMS.md §4) read from
/v1/completions with `prompt_logprobs=K` on each teacher-forced prompt+response, sent as the
STUDENT's token ids (ml.recipes.batching.encode, the ids every recipe uses), and written in exactly
ml.teacher_signals.precompute_dckd's file layout, so `ml.recipes.dckd.train(..., signals=path)` takes
it unchanged. Also the per-token teacher log-probs of given answers (the heatmap's teacher_logp).

vLLM's prompt_logprobs[i] is {token_id: {logprob, rank, decoded_token}} for the distribution that
predicts prompt token i from tokens < i (position 0: null), holding the top K plus token i itself.
Response token j of a row sits at i = len(prompt_ids) + j, so row j of the top-K is the state that
predicts response token j, as in ml.teacher_signals.topk_logprobs. ADPA's signals come from TWO
white-box endpoints (pi_dpo and pi_sft, each served on its own) at the states of the local student's
own greedy responses (precompute_adpa_endpoint, precompute_adpa's layout).

Before anything is sent the server's tokenizer is compared with the student's (sample texts through
/tokenize, and the last id of the student's vocabulary through /detokenize): token ids only mean the
same on both sides when they agree, else ml.modeling.TokenizerMismatchError names the methods that
still work. Temperature: the server returns the model's raw (T = 1) log-probs and only K of them;
the tempered distribution needs the full vocabulary's normaliser, so τ != 1 is refused."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from ml.chat import messages_of, render_prompt
from ml.endpoints.client import EndpointClient
from ml.endpoints.probe import FINGERPRINT_TEXTS
from ml.modeling import TokenizerMismatchError
from ml.recipes.batching import encode
from ml.losses.adpa import SFT_PROB_FLOOR, adpa_advantages
from ml.recipes.batching import encode_prompt, fit
from ml.teacher_signals import (SignalFile, _describe, _flat, _write, cache_key, model_identity, student_generator,
                                student_responses)

STILL_WORKING = ("sequence-level methods still work with this endpoint: sft on the teacher's generations "
                 "(sequence-level KD), dpo, redi, and the generative judge")


def endpoint_identity(client: EndpointClient) -> dict:
    """What the cache key knows of an endpoint teacher: its URL, the served name, and the model the
    server reports for it (/v1/models: id, root = the weights it was started from, max_model_len)."""
    entry = next((m for m in client.models() if m.get("id") == client.spec.model), {})
    return {"endpoint": client.base_url, "served_model": client.spec.model,
            "server_model": {k: entry.get(k) for k in ("id", "root", "max_model_len")}}


def check_tokenizer_alignment(client: EndpointClient, tokenizer, *, texts: list[str] = (), method: str = "DCKD") -> None:
    """Raise TokenizerMismatchError unless the server tokenizes FINGERPRINT_TEXTS and `texts` (e.g. a
    few rendered prompts and responses) to the same ids as `tokenizer`, and decodes the student's
    last vocabulary id to the same string (a cheap check that the vocabularies have one size)."""
    for text in list(FINGERPRINT_TEXTS) + list(texts):
        server = client.tokenize(text, add_special_tokens=False)
        local = tokenizer(text, add_special_tokens=False)["input_ids"]
        if server != local:
            at = next((i for i, (a, b) in enumerate(zip(server, local)) if a != b), min(len(server), len(local)))
            raise TokenizerMismatchError(
                f"{method} sends the student's token ids to the endpoint {client.spec.model!r}, but its tokenizer "
                f"differs from the student's: {text[:40]!r} is {len(server)} ids there, {len(local)} here, first "
                f"difference at position {at} ({server[at:at + 3]} vs {local[at:at + 3]}); {STILL_WORKING}.")
    last = len(tokenizer) - 1
    server_text = client.detokenize([last])
    if server_text != tokenizer.decode([last]):
        raise TokenizerMismatchError(
            f"{method}: the endpoint {client.spec.model!r} decodes id {last} (the student's last) as "
            f"{server_text[:20]!r}, the student as {tokenizer.decode([last])[:20]!r}: the vocabularies differ; "
            f"{STILL_WORKING}.")


def topk_from_prompt_logprobs(positions: list, start: int, count: int, top_k: int
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """positions: a choice's prompt_logprobs; rows start..start+count-1 -> (ids (count,K) int64,
    logps (count,K) float32), alternatives ordered by rank (ties by log-prob), the scored token
    itself dropped unless it is in the top K."""
    ids, logps = [], []
    for i in range(start, start + count):
        entry = positions[i] if i < len(positions) else None
        if not entry:
            raise ValueError(f"the server gave no prompt_logprobs at position {i}")
        ranked = sorted(((int(v.get("rank") or 10**9), -float(v["logprob"]), int(t)) for t, v in entry.items()))
        top = [(t, -neg) for rank, neg, t in ranked if rank <= top_k][:top_k]
        if len(top) < top_k:
            raise ValueError(f"position {i} has {len(top)} alternatives of rank <= {top_k}: the server's "
                             f"--max-logprobs is below top_k={top_k}?")
        ids.append([t for t, _ in top])
        logps.append([max(lp, -1e4) if math.isfinite(lp) else -1e4 for _, lp in top])
    return torch.tensor(ids, dtype=torch.int64).reshape(count, top_k), \
        torch.tensor(logps, dtype=torch.float32).reshape(count, top_k)


def _score(client: EndpointClient, ids: list[int], top_k: int) -> list:
    body = client.completions({"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": top_k})
    positions = body["choices"][0].get("prompt_logprobs")
    if not positions or len(positions) != len(ids):
        raise ValueError(f"the server returned {len(positions or [])} prompt_logprobs positions for {len(ids)} ids")
    return positions


def precompute_dckd_endpoint(client: EndpointClient, pairs: list, *, student_tokenizer, cache_dir, top_k: int = 50,
                             max_length: int = 1024, temperature: float = 1.0,
                             on_progress: Callable[[int, int], None] | None = None) -> SignalFile:
    """The endpoint teacher's top-K ids + probabilities on every chosen and rejected response of
    `pairs` (PreferencePairs), tokenized by the student; a file like precompute_dckd's, keyed by the
    endpoint identity, the student tokenizer's fingerprint, the pairs, top_k, max_length and τ."""
    from ml.endpoints.probe import tokenizer_fingerprint

    if float(temperature) != 1.0:
        raise ValueError(f"DCKD at temperature {temperature} cannot use an endpoint teacher: the server returns "
                         "raw (T=1) log-probs for its top-K only, and the tempered distribution needs the whole "
                         "vocabulary's normaliser. Run DCKD at temperature 1, or with an in-worker teacher.")
    params = {"top_k": top_k, "max_length": max_length, "temperature": float(temperature)}
    identity = endpoint_identity(client)
    identity["tokenizer"] = tokenizer_fingerprint(lambda t: student_tokenizer(t, add_special_tokens=False)["input_ids"])
    key = cache_key("dckd", models={"dpo": identity}, data=pairs, params=params)
    path = Path(cache_dir) / "dckd" / f"{key}.safetensors"
    if path.exists():
        return _describe(path, "dckd", key, True)
    samples = [render_prompt(student_tokenizer, p.prompt) for p in pairs[:2]] + [p.chosen for p in pairs[:2]]
    check_tokenizer_alignment(client, student_tokenizer, texts=samples, method="DCKD")
    window = identity["server_model"].get("max_model_len")
    rows = {side: [encode(student_tokenizer, p.prompt, getattr(p, side), max_length) for p in pairs]
            for side in ("chosen", "rejected")}
    longest = max(len(r.prompt_ids) + len(r.response_ids) for side_rows in rows.values() for r in side_rows)
    if window and longest + 1 > int(window):
        raise ValueError(f"a teacher-forced row is {longest} tokens; the endpoint's window is {window} "
                         f"(one more token is generated): lower max_length to {int(window) - 1} or less")
    jobs = [(side, i) for side in ("chosen", "rejected") for i in range(len(pairs))]
    done = [0]

    def one(job):
        side, i = job
        row = rows[side][i]
        positions = _score(client, row.prompt_ids + row.response_ids, top_k)
        ids, logps = topk_from_prompt_logprobs(positions, len(row.prompt_ids), len(row.response_ids), top_k)
        return ids, logps

    def progressed(index, result):
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], len(jobs))

    results = dict(zip(jobs, client.map(one, jobs, on_result=progressed)))
    tensors = {}
    for side in ("chosen", "rejected"):  # the same tensors, in the same order, as precompute_dckd writes
        signals = [results[(side, i)] for i in range(len(pairs))]
        tensors["prompt_ids"], tensors["prompt_offsets"] = _flat([r.prompt_ids for r in rows[side]], torch.int32)
        tensors[f"{side}_ids"], tensors[f"{side}_offsets"] = _flat([r.response_ids for r in rows[side]], torch.int32)
        tensors[f"{side}_topk_ids"], _ = _flat([ids for ids, _ in signals], torch.int32)
        tensors[f"{side}_topk_probs"], _ = _flat([lp.exp() for _, lp in signals], torch.float16)
    _write(path, tensors, {"kind": "dckd", "num_rows": len(pairs), **params,
                           "teacher": f"endpoint:{client.spec.model}@{client.base_url}"})
    return _describe(path, "dckd", key, False)


def _endpoint_topk(client: EndpointClient, rows: list, top_k: int, progressed=None) -> list:
    """rows (Encoded) -> per row (ids (R,K) int64, logps (R,K) float32) from prompt_logprobs."""
    def one(row):
        positions = _score(client, row.prompt_ids + row.response_ids, top_k)
        return topk_from_prompt_logprobs(positions, len(row.prompt_ids), len(row.response_ids), top_k)
    return client.map(one, rows, on_result=progressed)


def precompute_adpa_endpoint(dpo_client: EndpointClient, sft_client: EndpointClient, student, pairs: list, *,
                             cache_dir, top_k: int = 50, max_length: int = 1024, max_new_tokens: int = 256,
                             batch_size: int = 8, device=None, on_progress=None, sft_floor: float = SFT_PROB_FLOOR,
                             generation_backend: str | None = "hf") -> SignalFile:
    """ml.teacher_signals.precompute_adpa with pi_dpo and pi_sft served by two white-box endpoints:
    the local `student` (a directory or LoadedModel) writes its greedy responses, both endpoints
    score them (prompt_logprobs=top_k on the student's ids, tokenizers checked first), and the raw
    advantages A = log pi_dpo - log pi_sft over pi_dpo's top-K, floored at `sft_floor`, go into the
    same file layout (ml.recipes.adpa.train(..., signals=path) reads it). Keyed by both endpoints'
    identities, the student's files, the pairs and the parameters."""
    params = {"top_k": top_k, "max_length": max_length, "max_new_tokens": max_new_tokens,
              "sft_floor": float(sft_floor)}
    models = {"dpo": endpoint_identity(dpo_client), "sft": endpoint_identity(sft_client),
              "student": model_identity(student)}
    key = cache_key("adpa", models=models, data=pairs, params=params)
    path = Path(cache_dir) / "adpa" / f"{key}.safetensors"
    if path.exists():
        return _describe(path, "adpa", key, True)
    with student_generator(student, backend=generation_backend, device=device) as generator:
        tok, backend = generator.tokenizer, generator.name
        samples = [render_prompt(tok, p.prompt) for p in pairs[:2]]
        check_tokenizer_alignment(dpo_client, tok, texts=samples, method="ADPA")
        check_tokenizer_alignment(sft_client, tok, texts=samples, method="ADPA")
        responses = student_responses(generator, [p.prompt for p in pairs], max_new_tokens=max_new_tokens,
                                      batch_size=batch_size)
    rows = [fit(encode_prompt(tok, p.prompt), ids, max_length) for p, ids in zip(pairs, responses)]
    done = [0]

    def progressed(index, result):
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], 2 * len(rows))
    dpo_top = _endpoint_topk(dpo_client, rows, top_k, progressed)
    sft_top = _endpoint_topk(sft_client, rows, top_k, progressed)
    advantages = [adpa_advantages(d_ids[None], d_lp[None], s_ids[None], s_lp[None], floor=sft_floor)[0]  # (R,K)
                  for (d_ids, d_lp), (s_ids, s_lp) in zip(dpo_top, sft_top)]
    chosen = [encode(tok, p.prompt, p.chosen, max_length) for p in pairs]
    tensors = {}  # the same tensors as precompute_adpa writes
    tensors["prompt_ids"], tensors["prompt_offsets"] = _flat([r.prompt_ids for r in rows], torch.int32)
    tensors["chosen_prompt_ids"], tensors["chosen_prompt_offsets"] = _flat([c.prompt_ids for c in chosen],
                                                                           torch.int32)
    tensors["chosen_ids"], tensors["chosen_offsets"] = _flat([c.response_ids for c in chosen], torch.int32)
    tensors["student_ids"], tensors["student_offsets"] = _flat([r.response_ids for r in rows], torch.int32)
    tensors["student_topk_ids"], _ = _flat([ids for ids, _ in dpo_top], torch.int32)
    tensors["student_advantages"], _ = _flat(advantages, torch.float16)
    _write(path, tensors, {"kind": "adpa", "num_rows": len(pairs), "student_generation": backend, **params,
                           "teachers": f"endpoints: dpo={dpo_client.spec.model}@{dpo_client.base_url}, "
                                       f"sft={sft_client.spec.model}@{sft_client.base_url}"})
    return _describe(path, "adpa", key, False)


def _server_row(client: EndpointClient, prompt, response: str) -> tuple[list[int], list[int], list[str]]:
    """(prompt ids, response ids, response token strings) by the server's own tokenizer: the prompt
    through its chat template (/tokenize with messages), the response as plain text (no end-of-turn
    token: the server does not say which one its template uses)."""
    prompt_ids = client.tokenize(messages=messages_of(prompt))
    body = client.request("POST", f"{client.root_url}/tokenize", {"model": client.spec.model, "prompt": response,
                                                                  "add_special_tokens": False,
                                                                  "return_token_strs": True})
    return prompt_ids, [int(t) for t in body["tokens"]], list(body.get("token_strs") or [])


def endpoint_token_signals(client: EndpointClient, tokenizer, prompts: list, responses: list) -> list[dict]:
    """Per answer, like ml.token_heatmaps.token_signals without a student or teacher stages: tokens
    (decoded one by one), teacher_logp = log pi_T(y_t | s_t) from prompt_logprobs; kl, advantage and
    mean_kl are None. `tokenizer`: a local tokenizer the server shares (check_tokenizer_alignment
    once), giving the same rows as the in-worker teacher (response closed by the end-of-turn token);
    None: the server's own tokenization, for any endpoint whose vocabulary is not the student's."""
    def one(pair):
        if tokenizer is not None:
            row = encode(tokenizer, pair[0], pair[1], 10**9)
            prompt_ids, response_ids = row.prompt_ids, row.response_ids
            tokens = [tokenizer.decode([t]) for t in response_ids]
        else:
            prompt_ids, response_ids, tokens = _server_row(client, pair[0], pair[1])
        ids = prompt_ids + response_ids
        if not response_ids:
            return {"tokens": [], "teacher_logp": [], "kl": None, "advantage": None, "mean_kl": None}
        positions = _score(client, ids, 1)
        logps = [round(float(positions[i][str(ids[i])]["logprob"]), 4) for i in range(len(prompt_ids), len(ids))]
        return {"tokens": tokens, "teacher_logp": logps, "kl": None, "advantage": None, "mean_kl": None}

    return client.map(one, list(zip(prompts, responses)))
