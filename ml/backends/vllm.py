"""vLLM as a generation backend on GPU hosts (ml.backends picks it). Prompts are tokenized by
ml.chat exactly as for HF generate and handed to vLLM as token ids; sampling settings are explicit
(`generation_config="vllm"`, so a checkpoint's own defaults never apply), stops are ml.chat's
end-of-turn and eos ids, and log-probs are requested for the sampled token (plus top-K when asked)
after temperature scaling, to match ml.generation's convention. The engine asks for a share of the
GPU memory that is free when it starts (an evaluation's HF teacher may already be resident), and
close() frees it. vllm is imported only when a VLLMGenerator is built. Not yet run on a GPU in
this project (no device was lent): see docs/generation-backends.md."""
from __future__ import annotations

import gc

from ml.backends import Generator
from ml.chat import prompt_ids, stop_token_ids
from ml.generation import GenerationOutput
from ml.modeling import load_tokenizer, split_model_ref


def memory_share(free_bytes: int, total_bytes: int, *, cap: float = 0.85, headroom: float = 0.9) -> float:
    """vLLM's gpu_memory_utilization: `cap` of the device, or `headroom` of what is free when less is
    (vLLM refuses to start when the share it asks for exceeds the device's free memory)."""
    return round(min(cap, headroom * free_bytes / total_bytes), 4)


def _sampling_params(vllm, *, k, temperature, top_p, max_new_tokens, seed, top_logprobs, stop_ids):
    greedy = temperature <= 0
    return vllm.SamplingParams(n=1 if greedy else k, temperature=0.0 if greedy else temperature,
                               top_p=1.0 if greedy else top_p, top_k=-1, max_tokens=max_new_tokens, seed=seed,
                               logprobs=top_logprobs, stop_token_ids=stop_ids, repetition_penalty=1.0,
                               skip_special_tokens=True)


def outputs_from_vllm(request, tokenizer, *, k: int, stop_ids: list[int], top_logprobs: int) -> list[GenerationOutput]:
    """One vLLM RequestOutput -> k GenerationOutputs (greedy: its one sample repeated k times).
    vLLM's per-step logprobs are {token_id: Logprob(logprob, rank)} dicts holding the sampled
    token and the top `top_logprobs` ones."""
    results = []
    for sample in request.outputs:
        ids = list(sample.token_ids)
        steps = sample.logprobs or [{} for _ in ids]
        logps = [float(step[token].logprob) if token in step else float("nan") for token, step in zip(ids, steps)]
        top = None
        if top_logprobs:
            top = [sorted(((t, float(lp.logprob)) for t, lp in step.items()), key=lambda x: -x[1])[:top_logprobs]
                   for step in steps]
        reason = "stop" if ids and ids[-1] in stop_ids else "length"
        results.append(GenerationOutput(tokenizer.decode(ids, skip_special_tokens=True), ids, logps, reason, top))
    while len(results) < k:
        first = results[0]
        results.append(GenerationOutput(first.text, list(first.token_ids), list(first.token_logps),
                                        first.finish_reason, first.top_logprobs))
    return results


class VLLMGenerator(Generator):
    name = "vllm"

    def __init__(self, source: str, *, revision: str | None = None, dtype: str = "bfloat16",
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None, **_):
        import torch
        import vllm  # noqa: PLC0415  (optional dependency, GPU hosts only)

        if gpu_memory_utilization is None:
            gpu_memory_utilization = memory_share(*torch.cuda.mem_get_info())

        self.vllm = vllm
        source, revision = split_model_ref(source, revision)
        self.tokenizer = load_tokenizer(source, revision=revision)
        from ml.modeling import record_load

        record_load(source, revision=revision)  # the load ledger sees vLLM engines too
        self.llm = vllm.LLM(model=source, revision=revision, tokenizer=source, dtype=dtype, trust_remote_code=False,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            generation_config="vllm", logprobs_mode="processed_logprobs")
        self.window = self.llm.llm_engine.model_config.max_model_len

    def generate(self, prompts, *, k: int = 1, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64,
                 seed: int = 0, top_logprobs: int = 0, batch_size: int | None = None, on_progress=None,
                 should_stop=None):
        """Same contract as ml.generation.generate (vLLM schedules its own batches; batch_size unused)."""
        stop_ids = stop_token_ids(self.tokenizer)
        max_new_tokens = min(max_new_tokens, self.window // 2) if max_new_tokens >= self.window else max_new_tokens
        room = self.window - max_new_tokens  # as ml.generation.fit_window
        rows = [{"prompt_token_ids": prompt_ids(self.tokenizer, p, max_length=room)} for p in prompts]
        params = _sampling_params(self.vllm, k=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                  seed=seed, top_logprobs=top_logprobs, stop_ids=stop_ids)
        if should_stop is not None and should_stop():
            return [[] for _ in prompts]
        requests = self.llm.generate(rows, params, use_tqdm=False)
        if on_progress is not None:
            on_progress(len(prompts), len(prompts))
        return [outputs_from_vllm(r, self.tokenizer, k=k, stop_ids=stop_ids, top_logprobs=top_logprobs)
                for r in requests]

    def close(self) -> None:
        """Shut the engine down (V1 runs it in a child process) and return its GPU memory."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(llm.llm_engine, "engine_core", None)
        if hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        gc.collect()
        import torch

        torch.cuda.empty_cache()
