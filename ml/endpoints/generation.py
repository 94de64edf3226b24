"""Generation by an endpoint teacher, behind the same interface as the in-worker backends
(ml.backends.Generator): `generate(prompts, k=..., ...)` -> list[list[GenerationOutput]]. Each prompt
is one /v1/chat/completions request with n=k samples (one sample copied k times when greedy, as the
HF backend does); chat messages go as they are and plain text as one user message, so the SERVER's
chat template applies. Requests run concurrently (spec.concurrency) and `on_result(index, outputs)`
hands each prompt's outputs to the caller as they arrive, so a worker stores them one by one and a
rerun asks only for the prompts it lacks.

What an output holds depends on the endpoint: a white-box (vLLM) server returns token ids
(`return_tokens_as_token_ids`) and the sampled tokens' log-probs, so `token_ids`/`token_logps` are
filled like the HF backend's; a black-box one gives text (and log-probs where it offers them) but no
ids: `token_ids` is then []. vLLM reports log-probs of the model's RAW distribution (before
temperature) unless the server runs with --logprobs-mode processed_logprobs; the HF backend's are
temperature-scaled, so compare the two only at temperature 1. `text` is the server's own
detokenization (vLLM's incremental detokenizer may put a space before a WordPiece vocabulary's first
word, where HF's decode does not). finish_reason is the server's ("stop", "length", or whatever else)."""
from __future__ import annotations

import os
from typing import Callable

from ml.backends import Generator
from ml.chat import messages_of
from ml.endpoints.client import EndpointClient
from ml.endpoints.spec import WHITE_BOX, EndpointSpec
from ml.generation import GenerationOutput

TOKEN_ID_PREFIX = "token_id:"


def _token_id(token: str) -> int | None:
    return int(token[len(TOKEN_ID_PREFIX):]) if token.startswith(TOKEN_ID_PREFIX) else None


def output_from_choice(choice: dict, *, top_logprobs: int) -> GenerationOutput:
    """One chat `choice` -> GenerationOutput. logprobs.content[t] = {token, logprob, top_logprobs:
    [{token, logprob}]}; tokens read "token_id:<n>" when the request asked return_tokens_as_token_ids."""
    content = ((choice.get("logprobs") or {}).get("content")) or []
    ids = [_token_id(step.get("token", "")) for step in content]
    token_ids = [] if not ids or None in ids else ids
    token_logps = [float(step["logprob"]) for step in content] if content else []
    top = None
    if top_logprobs and content:
        top = [[(_token_id(alt["token"]) if token_ids else alt["token"], float(alt["logprob"]))
                for alt in (step.get("top_logprobs") or [])[:top_logprobs]] for step in content]
    text = (choice.get("message") or {}).get("content") or ""
    return GenerationOutput(text, token_ids, token_logps, str(choice.get("finish_reason") or "stop"), top)


class EndpointGenerator(Generator):
    """ml.backends.Generator over an endpoint. `capability` (the probe's record) says whether the
    server takes vLLM's extra sampling fields (token ids, top_k=-1, repetition_penalty=1): sent only
    to a white-box server, since hosted APIs refuse unknown fields. `.client.usage` counts tokens."""

    name = "endpoint"

    def __init__(self, spec: EndpointSpec | dict, *, capability: dict | None = None, env=None,
                 client: EndpointClient | None = None):
        spec = EndpointSpec.from_dict(spec) if isinstance(spec, dict) else spec
        self.client = client or EndpointClient(spec, env=os.environ if env is None else env)
        self.capability = capability or {}
        self.tokenizer = None  # the server tokenizes; no local tokenizer

    @property
    def usage(self):
        return self.client.usage

    def payload(self, prompt, *, k: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
                top_logprobs: int) -> dict:
        """The chat request for one prompt (n=1 when greedy: the k copies are made here)."""
        greedy = temperature <= 0
        body = {"messages": messages_of(prompt), "n": 1 if greedy else k, "max_tokens": max_new_tokens,
                "temperature": 0.0 if greedy else temperature, "top_p": 1.0 if greedy else top_p, "seed": seed}
        white = self.capability.get("kind") == WHITE_BOX
        if white or self.capability.get("logprobs"):
            body["logprobs"] = True
            if top_logprobs:
                body["top_logprobs"] = top_logprobs
        if white:
            body.update(return_tokens_as_token_ids=True, top_k=-1, repetition_penalty=1.0)
        return body

    def generate(self, prompts: list, *, k: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, seed: int = 0, top_logprobs: int = 0, batch_size: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_result: Callable[[int, list], None] | None = None) -> list[list[GenerationOutput]]:
        """k outputs per prompt, in prompt order (batch_size is unused: the server batches).
        on_result(index, outputs) per prompt as it arrives, then on_progress(done, total); prompts not
        reached when should_stop() turned true get []. The first failed prompt (after the client's
        retries) raises, once the requests in flight end; what arrived before was delivered."""
        if k < 1 or top_logprobs < 0:
            raise ValueError(f"k must be >= 1 and top_logprobs >= 0 (got k={k}, top_logprobs={top_logprobs})")
        greedy, done = temperature <= 0, [0]

        def one(prompt) -> list[GenerationOutput]:
            body = self.client.chat(self.payload(prompt, k=k, temperature=temperature, top_p=top_p,
                                                 max_new_tokens=max_new_tokens, seed=seed, top_logprobs=top_logprobs))
            choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
            outputs = [output_from_choice(c, top_logprobs=top_logprobs) for c in choices]
            if greedy:
                outputs = [outputs[0]] + [_copy(outputs[0]) for _ in range(k - 1)]
            return outputs

        def delivered(index: int, outputs: list) -> None:
            done[0] += 1
            if on_result is not None:
                on_result(index, outputs)
            if on_progress is not None:
                on_progress(done[0], len(prompts))

        results = self.client.map(one, prompts, on_result=delivered, should_stop=should_stop)
        return [r if r is not None else [] for r in results]

    def close(self) -> None:
        self.client.close()


def _copy(output: GenerationOutput) -> GenerationOutput:
    top = None if output.top_logprobs is None else [list(step) for step in output.top_logprobs]
    return GenerationOutput(output.text, list(output.token_ids), list(output.token_logps), output.finish_reason, top,
                            output.prompt_truncated)
