"""Batched generation: prompts tokenized once by ml.chat (template, BOS, cut to the model's window),
grouped by length into left-padded batches, k samples per prompt, and for every generated token its
log-probability under the model's temperature-scaled distribution (and, when asked, the top-K
alternatives). Only those numbers are kept: a logits processor draws each step's tokens itself, a
few rows at a time, and the step's distribution is freed before the next forward pass; the KV cache
is allocated once (static), so peak memory is the model, the KV cache and two (N,V) buffers (issue
11.3; docs/benchmarks.md). Sampling settings are
exactly the arguments given: a checkpoint's own generation_config (repetition penalty, top-k, ...)
never applies. Progress and cooperative stopping go through plain callbacks."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import (GenerationConfig, LogitsProcessor, LogitsProcessorList, StaticCache, StoppingCriteria,
                          StoppingCriteriaList, TopPLogitsWarper)

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


class StepSampler(LogitsProcessor):
    """Picks every step's tokens itself and records their log-probs, so that no vocabulary-sized
    tensor outlives the step. generate runs greedy (do_sample=False, no warpers): `scores` (N,V) is
    its own fp32 copy of the model's logits, which this processor scales by 1/temperature in place;
    then, `rows` rows at a time (temporaries of rows x V, not N x V), it takes the (N,)
    log-normaliser, the top-K alternatives when asked, applies top-p and draws one token per row
    (softmax + multinomial; argmax when greedy), and records log p(token) = scaled logit -
    log-normaliser: the model's temperature-scaled distribution, before top-p. The drawn token's
    score is set to +inf so generate's argmax takes it; `release` (a stopping criterion, run after
    that argmax) frees the (N,V) storage before the next forward instead of after it."""

    def __init__(self, *, temperature: float, top_p: float = 1.0, top_k: int = 0, row_elements: int | None = None):
        self.greedy = temperature <= 0
        self.scale = 1.0 if self.greedy else temperature
        self.top_k, self.row_elements = top_k, row_elements
        self.nucleus = TopPLogitsWarper(top_p) if top_p < 1.0 else None
        self.step_scores: torch.Tensor | None = None
        self.tokens: list[torch.Tensor] = []  # T x (N,)
        self.logps: list[torch.Tensor] = []  # T x (N,)
        self.top: list[tuple[torch.Tensor, torch.Tensor]] = []  # T x ((N,K) ids, (N,K) logps)

    def _draw(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (c,V) scaled logits -> (c,) drawn ids; top-p is HF's own TopPLogitsWarper, on the chunk."""
        if self.greedy:
            return rows.argmax(-1)
        if self.nucleus is not None:
            rows = self.nucleus(None, rows)  # (c,V) masked copy; `rows` itself is left as it was
        return torch.multinomial(rows.softmax(-1), num_samples=1).squeeze(1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            scores.div_(self.scale)
        n, vocab = scores.shape
        tokens = torch.empty(n, dtype=torch.long, device=scores.device)
        logps = torch.empty(n, dtype=torch.float, device=scores.device)
        top_ids = top_logps = None
        if self.top_k:
            top_ids = torch.empty(n, self.top_k, dtype=torch.long, device=scores.device)
            top_logps = torch.empty(n, self.top_k, dtype=torch.float, device=scores.device)
        # ~2 MiB temporaries on CPU (1-3 rows of a 152k vocabulary); on an accelerator larger chunks,
        # since every chunk costs kernel launches and its memory is the caching allocator's anyway
        row_elements = self.row_elements or (2**19 if scores.device.type == "cpu" else 2**23)
        step = max(1, row_elements // vocab)
        for start in range(0, n, step):
            rows = scores[start : start + step]  # (c,V) view
            log_norm = torch.logsumexp(rows, dim=-1)  # (c,)
            if self.top_k:
                values, ids = rows.topk(self.top_k, dim=-1)
                top_ids[start : start + step], top_logps[start : start + step] = ids, values - log_norm[:, None]
            drawn = self._draw(rows)
            tokens[start : start + step] = drawn
            logps[start : start + step] = rows.gather(-1, drawn[:, None]).squeeze(-1) - log_norm
        self.tokens.append(tokens)
        self.logps.append(logps)
        if self.top_k:
            self.top.append((top_ids.cpu(), top_logps.cpu()))
        scores[torch.arange(n, device=scores.device), tokens] = float("inf")
        self.step_scores = scores
        return scores

    def release(self, input_ids: torch.Tensor) -> torch.Tensor:
        """For _Release: never stops a row; drops the step's (N,V) scores (generate has read them)."""
        if self.step_scores is not None:
            self.step_scores.set_()  # frees the storage, for every name generate holds it by
            self.step_scores = None
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def finish(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `steps` steps (generate may drop a last, deferred one): (N,T) drawn ids, (N,T) their log-probs."""
        return torch.stack(self.tokens[:steps], dim=1), torch.stack(self.logps[:steps], dim=1)


class _Release(StoppingCriteria):
    """generate calls its stopping criteria right after it has taken the step's tokens: the moment
    the step's scores can go (generate would keep them alive through the next forward pass)."""

    def __init__(self, sampler: StepSampler):
        self.sampler = sampler

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return self.sampler.release(input_ids)


def sampled_token_logps(step_logits: torch.Tensor, sequences: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """step_logits (N,T,V) raw logits at each generated step; sequences (N,T) the generated ids.
    Returns (N,T) log p(token) under softmax(logits / temperature); temperature 0 means 1 (greedy
    picks the argmax of the unscaled distribution). The reference for StepSampler in tests."""
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


def decoding_config(*, max_new_tokens: int, pad_id: int, stop_ids: list[int]) -> GenerationConfig:
    """The complete, explicit settings of one generate() call (no checkpoint defaults). generate itself
    only takes argmaxes: StepSampler draws the tokens, so no warper, no scores kept, no returned cache;
    no auto-compile (a static cache on a GPU would otherwise trigger torch.compile)."""
    return GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                            eos_token_id=stop_ids, repetition_penalty=1.0, return_dict_in_generate=False,
                            output_logits=False, output_scores=False, disable_compile=True)


def _kv_cache(model, max_len: int):
    """A StaticCache of max_len positions (filled in place, allocated once at the first layer
    update: no per-step torch.cat copy of the keys and values), or None (generate's default
    DynamicCache) for models it does not fit (encoder-decoder, recurrent-state models)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = inner.config
    if config.is_encoder_decoder or not inner._supports_default_dynamic_cache():
        return None
    return StaticCache(config=config.get_text_config(decoder=True), max_cache_len=max_len)


def _left_pad(rows: list[list[int]], pad_id: int) -> dict:
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _generate_batch(model, tokenizer, rows, *, k, temperature, top_p, max_new_tokens, top_logprobs):
    """rows: prompt token ids -> for each, k GenerationOutputs."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    greedy = temperature <= 0
    samples = 1 if greedy else k  # greedy samples are identical: compute once, copy k times
    batch = {name: t.repeat_interleave(samples, dim=0).to(device) for name, t in _left_pad(rows, pad_id).items()}
    width = batch["input_ids"].shape[1]
    stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
    sampler = StepSampler(temperature=temperature, top_p=top_p, top_k=top_logprobs)
    config = decoding_config(max_new_tokens=max_new_tokens, pad_id=pad_id, stop_ids=stop_ids)
    cache = _kv_cache(model, width + max_new_tokens)
    extra = {} if cache is None else {"past_key_values": cache}
    with torch.no_grad(), _only_these_settings(model):
        sequences = model.generate(**batch, **extra, generation_config=config,
                                   logits_processor=LogitsProcessorList([sampler]),
                                   stopping_criteria=StoppingCriteriaList([_Release(sampler)]))
    del cache, extra
    generated = sequences[:, width:].cpu()  # (N*samples, T)
    drawn, token_logps = (t.cpu() for t in sampler.finish(generated.shape[1]))  # (N*samples, T) each
    top_ids = torch.stack([i for i, _ in sampler.top], 1) if sampler.top else None  # (N*samples, T, K)
    top_values = torch.stack([v for _, v in sampler.top], 1) if sampler.top else None
    stops, results = set(stop_ids), []
    for row in range(len(rows)):
        outputs = []
        for s in range(samples):
            index = row * samples + s
            ids, logps, reason = _trim(generated[index].tolist(), token_logps[index].tolist(), stops)
            if ids != drawn[index, : len(ids)].tolist():
                raise RuntimeError("generate did not keep the tokens StepSampler drew (a processor ran after it?)")
            top = None if top_ids is None else [list(zip(top_ids[index, t].tolist(), top_values[index, t].tolist()))
                                                for t in range(len(ids))]
            outputs.append(GenerationOutput(tokenizer.decode(ids, skip_special_tokens=True), ids, logps, reason, top))
        results.append(outputs if not greedy else [outputs[0]] + [_copy(outputs[0]) for _ in range(k - 1)])
    return results


def _copy(output: GenerationOutput) -> GenerationOutput:
    top = None if output.top_logprobs is None else [list(step) for step in output.top_logprobs]
    return GenerationOutput(output.text, list(output.token_ids), list(output.token_logps), output.finish_reason, top,
                            output.prompt_truncated)


_MMAP_THRESHOLD = 1 << 20


@functools.cache
def return_freed_buffers_to_the_os() -> bool:
    """glibc malloc raises its mmap threshold to the size of each large block freed (up to 32 MiB),
    so after the first step's (N,V) logits are freed every later buffer of that size, and the
    prefill's activations, come from the heap, which keeps them after they are freed: measured,
    +75 MiB resident over a 152k-vocabulary generation (docs/benchmarks.md). A fixed threshold
    (mallopt M_MMAP_THRESHOLD) gives every block >= 1 MiB its own mapping, returned when freed.
    Process-wide and once; a no-op (False) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, _MMAP_THRESHOLD))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


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
    return_freed_buffers_to_the_os()
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
