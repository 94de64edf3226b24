"""Batched generation: prompts rendered with the chat template, grouped by length into left-padded
batches, k samples per prompt, and for every generated token its log-probability under the model's
temperature-scaled distribution. Progress and cooperative stopping go through plain callbacks, so a
worker can report to a browser and cancel between batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ml.modeling import render_prompt


@dataclass
class GenerationOutput:
    """One generated response. `token_ids` end with eos when `finish_reason == "stop"`; `token_logps`
    are aligned with them; `text` is decoded without special tokens."""

    text: str
    token_ids: list[int]
    token_logps: list[float]
    finish_reason: str  # "stop" (eos generated) or "length" (max_new_tokens reached)


def sampled_token_logps(step_logits: torch.Tensor, sequences: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """step_logits (N,T,V) raw logits at each generated step; sequences (N,T) the generated ids.
    Returns (N,T) log p(token) under softmax(logits / temperature); temperature 0 means 1 (greedy
    picks the argmax of the unscaled distribution)."""
    scale = temperature if temperature > 0 else 1.0
    logprobs = torch.log_softmax(step_logits.float() / scale, dim=-1)  # (N,T,V)
    return logprobs.gather(-1, sequences.unsqueeze(-1)).squeeze(-1)  # (N,T)


def _trim(ids: list[int], logps: list[float], eos_ids: set[int]):
    """Cut a generated row after its first eos (the rest is padding) and name why it ended."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[: i + 1], logps[: i + 1], "stop"
    return ids, logps, "length"


def _generate_batch(model, tokenizer, texts, *, k, temperature, top_p, max_new_tokens):
    """Returns, for each text, k GenerationOutputs."""
    device = next(model.parameters()).device
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    greedy = temperature <= 0
    samples = 1 if greedy else k  # greedy samples are identical: compute once, copy k times
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    with torch.no_grad():
        out = model.generate(
            **batch,
            **kwargs,
            max_new_tokens=max_new_tokens,
            num_return_sequences=samples,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=list(eos_ids),
            return_dict_in_generate=True,
            output_logits=True,
        )
    prompt_len = batch["input_ids"].shape[1]
    generated = out.sequences[:, prompt_len:]  # (N*samples, T)
    step_logits = torch.stack(out.logits, dim=1)  # (N*samples, T, V)
    token_logps = sampled_token_logps(step_logits, generated, temperature=temperature)  # (N*samples, T)
    results = []
    for row in range(len(texts)):
        outputs = []
        for s in range(samples):
            index = row * samples + s
            ids, logps, reason = _trim(generated[index].tolist(), token_logps[index].tolist(), eos_ids)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            outputs.append(GenerationOutput(text, ids, logps, reason))
        results.append(outputs if not greedy else [outputs[0]] + [_copy(outputs[0]) for _ in range(k - 1)])
    return results


def _copy(output: GenerationOutput) -> GenerationOutput:
    return GenerationOutput(output.text, list(output.token_ids), list(output.token_logps), output.finish_reason)


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
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[GenerationOutput]]:
    """Generate k responses per prompt (outer list follows `prompts`, inner has k outputs).

    temperature 0 is greedy decoding. Prompts are sorted by length so a batch carries little
    padding, then results are put back in prompt order. `on_progress(done, total)` is called after
    each batch; when `should_stop()` turns true between batches, generation ends early and the
    prompts not reached get an empty list. Sampling is seeded (the global RNG state is restored)."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1 (got k={k}, batch_size={batch_size})")
    if tokenizer.padding_side != "left":
        tokenizer.padding_side = "left"  # right padding would put pad tokens before the new tokens
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    results: list[list[GenerationOutput]] = [[] for _ in texts]
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            if should_stop is not None and should_stop():
                break
            indices = order[start : start + batch_size]
            batch_results = _generate_batch(
                model,
                tokenizer,
                [texts[i] for i in indices],
                k=k,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
            )
            for i, outputs in zip(indices, batch_results):
                results[i] = outputs
            if on_progress is not None:
                on_progress(min(start + batch_size, len(order)), len(order))
    model.train(was_training)
    return results
