"""Batched generation: prompts tokenized once by ml.chat (template, BOS, cut to the model's window),
grouped by length into left-padded batches, k samples per prompt, and for every generated token its
log-probability under the model's temperature-scaled distribution (and, when asked, the top-K
alternatives). Only those numbers are kept: a logits processor reads each step's distribution and
drops it at the next, so memory never grows with vocabulary x length. Sampling settings are
exactly the arguments given: a checkpoint's own generation_config (repetition penalty, top-k, ...)
never applies. Progress and cooperative stopping go through plain callbacks."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from ml.chat import context_window, prompt_ids, stop_token_ids

log = logging.getLogger(__name__)


@dataclass
class GenerationOutput:
    """One generated response. `token_ids` end with the stop token (end-of-turn / eos) when
    `finish_reason == "stop"`; `token_logps` are aligned with them; `text` is decoded without special
    tokens; `top_logprobs[t]` lists (id, logp) of the K likeliest tokens at step t when asked for."""

    text: str
    token_ids: list[int]
    token_logps: list[float]
    finish_reason: str  # "stop" (a stop token generated) or "length" (max_new_tokens reached)
    top_logprobs: list[list[tuple[int, float]]] | None = None
    prompt_truncated: bool = field(default=False)


class SampledLogps(LogitsProcessor):
    """Records log p(token) of each sampled token under softmax(raw logits / temperature) without a
    vocabulary-sized tensor of its own: at step t it keeps a reference to the step's scores (which
    generate holds anyway) and their (N,) log-normaliser; at step t+1, which shows the drawn token,
    it gathers one value per row and lets the scores go. Placed before every warper (it is the only
    custom processor and the generation config is fresh), so it sees the raw logits."""

    def __init__(self, *, temperature: float, top_k: int = 0):
        self.scale = temperature if temperature > 0 else 1.0
        self.top_k = top_k
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (N,V) scores, (N,) logsumexp(scores/T)
        self.logps: list[torch.Tensor] = []  # T x (N,)
        self.top: list[tuple[torch.Tensor, torch.Tensor]] = []  # T x ((N,K) ids, (N,K) logps)

    def _take(self, tokens: torch.Tensor) -> None:
        scores, log_norm = self.pending
        self.logps.append(scores.gather(-1, tokens[:, None]).squeeze(-1).float() / self.scale - log_norm)  # (N,)
        self.pending = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.pending is not None:
            self._take(input_ids[:, -1])
        log_norm = torch.logsumexp(scores.float() / self.scale, dim=-1)  # (N,); the temporary is freed here
        if self.top_k:
            values, ids = scores.topk(self.top_k, dim=-1)
            self.top.append((ids.cpu(), (values.float() / self.scale - log_norm[:, None]).cpu()))
        self.pending = (scores, log_norm)
        return scores

    def finish(self, generated: torch.Tensor) -> torch.Tensor:
        """generated (N,T) new tokens -> (N,T) their log-probs."""
        if self.pending is not None and len(self.logps) < generated.shape[1]:
            self._take(generated[:, len(self.logps)])
        return torch.stack(self.logps, dim=1) if self.logps else generated.new_zeros(generated.shape, dtype=torch.float)


def sampled_token_logps(step_logits: torch.Tensor, sequences: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """step_logits (N,T,V) raw logits at each generated step; sequences (N,T) the generated ids.
    Returns (N,T) log p(token) under softmax(logits / temperature); temperature 0 means 1 (greedy
    picks the argmax of the unscaled distribution). The reference for SampledLogps in tests."""
    scale = temperature if temperature > 0 else 1.0
    logprobs = torch.log_softmax(step_logits.float() / scale, dim=-1)  # (N,T,V)
    return logprobs.gather(-1, sequences.unsqueeze(-1)).squeeze(-1)  # (N,T)


def _trim(ids: list[int], logps: list[float], eos_ids: set[int]):
    """Cut a generated row after its first stop token (the rest is padding) and name why it ended."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[: i + 1], logps[: i + 1], "stop"
    return ids, logps, "length"


@contextlib.contextmanager
def _only_these_settings(model):
    """generate() fills every unset field from model.generation_config; swapping in a blank one for
    the call means only the settings passed here apply (the reported log-probs are the raw model's)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper
    saved = inner.generation_config
    inner.generation_config = GenerationConfig()
    try:
        yield
    finally:
        inner.generation_config = saved


def sampling_config(*, greedy: bool, temperature: float, top_p: float, max_new_tokens: int, samples: int,
                    pad_id: int, stop_ids: list[int]) -> GenerationConfig:
    """The complete, explicit settings of one generate() call (no checkpoint defaults)."""
    sampling = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    return GenerationConfig(**sampling, max_new_tokens=max_new_tokens, num_return_sequences=samples,
                            pad_token_id=pad_id, eos_token_id=stop_ids, repetition_penalty=1.0,
                            return_dict_in_generate=True, output_logits=False, output_scores=False)


def _left_pad(rows: list[list[int]], pad_id: int) -> dict:
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _generate_batch(model, tokenizer, rows, *, k, temperature, top_p, max_new_tokens, top_logprobs):
    """rows: prompt token ids -> for each, k GenerationOutputs."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = {name: t.to(device) for name, t in _left_pad(rows, pad_id).items()}
    greedy = temperature <= 0
    samples = 1 if greedy else k  # greedy samples are identical: compute once, copy k times
    stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
    recorder = SampledLogps(temperature=temperature, top_k=top_logprobs)
    config = sampling_config(greedy=greedy, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                             samples=samples, pad_id=pad_id, stop_ids=stop_ids)
    with torch.no_grad(), _only_these_settings(model):
        out = model.generate(**batch, generation_config=config, logits_processor=LogitsProcessorList([recorder]))
    generated = out.sequences[:, batch["input_ids"].shape[1]:]  # (N*samples, T)
    token_logps = recorder.finish(generated).cpu()  # (N*samples, T)
    top_ids = torch.stack([i for i, _ in recorder.top], 1) if recorder.top else None  # (N*samples, T, K)
    top_values = torch.stack([v for _, v in recorder.top], 1) if recorder.top else None
    stops, results = set(stop_ids), []
    for row in range(len(rows)):
        outputs = []
        for s in range(samples):
            index = row * samples + s
            ids, logps, reason = _trim(generated[index].tolist(), token_logps[index].tolist(), stops)
            top = None if top_ids is None else [list(zip(top_ids[index, t].tolist(), top_values[index, t].tolist()))
                                                for t in range(len(ids))]
            outputs.append(GenerationOutput(tokenizer.decode(ids, skip_special_tokens=True), ids, logps, reason, top))
        results.append(outputs if not greedy else [outputs[0]] + [_copy(outputs[0]) for _ in range(k - 1)])
    return results


def _copy(output: GenerationOutput) -> GenerationOutput:
    top = None if output.top_logprobs is None else [list(step) for step in output.top_logprobs]
    return GenerationOutput(output.text, list(output.token_ids), list(output.token_logps), output.finish_reason, top,
                            output.prompt_truncated)


def fit_window(model, max_new_tokens: int) -> tuple[int | None, int]:
    """(prompt room, max_new_tokens) that fit the model's window (room None: no known limit). A
    max_new_tokens that leaves no room is cut to half the window, with a warning, not an error:
    configs default to lengths (e.g. 256) that tiny models' windows can equal."""
    window = context_window(model)
    if window is None:
        return None, max_new_tokens
    if max_new_tokens >= window:
        log.warning("max_new_tokens %d does not fit the model's window of %d: using %d", max_new_tokens, window,
                    window // 2)
        max_new_tokens = window // 2
    return window - max_new_tokens, max_new_tokens


def generate(
    model,
    tokenizer,
    prompts: list[str | list[dict]],
    *,
    k: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 32,
    top_logprobs: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[GenerationOutput]]:
    """Generate k responses per prompt (outer list follows `prompts`, inner has k outputs).

    temperature 0 is greedy decoding. A prompt longer than the model's window minus max_new_tokens
    keeps its BOS and its tail (`prompt_truncated` says so). Prompts are sorted by length so a batch
    carries little padding, then results are put back in prompt order. `on_progress(done, total)`
    after each batch; when `should_stop()` turns true between batches, generation ends early and the
    prompts not reached get an empty list. Sampling is seeded (the global RNG state is restored)."""
    if k < 1 or batch_size < 1 or top_logprobs < 0:
        raise ValueError(f"k and batch_size must be >= 1 and top_logprobs >= 0 "
                         f"(got k={k}, batch_size={batch_size}, top_logprobs={top_logprobs})")
    room, max_new_tokens = fit_window(model, max_new_tokens)
    full = [prompt_ids(tokenizer, prompt) for prompt in prompts]
    rows = [prompt_ids(tokenizer, prompt, max_length=room) if room and len(ids) > room else ids
            for prompt, ids in zip(prompts, full)]
    cut = [len(r) < len(f) for r, f in zip(rows, full)]
    if any(cut):
        log.warning("%d prompt(s) cut to the model's window (%d prompt tokens)", sum(cut), room)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    results: list[list[GenerationOutput]] = [[] for _ in rows]
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            if should_stop is not None and should_stop():
                break
            indices = order[start : start + batch_size]
            batch_results = _generate_batch(model, tokenizer, [rows[i] for i in indices], k=k, temperature=temperature,
                                            top_p=top_p, max_new_tokens=max_new_tokens, top_logprobs=top_logprobs)
            for i, outputs in zip(indices, batch_results):
                for output in outputs:
                    output.prompt_truncated = cut[i]
                results[i] = outputs
            if on_progress is not None:
                on_progress(min(start + batch_size, len(order)), len(order))
    model.train(was_training)
    return results
