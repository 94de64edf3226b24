"""The gpu worker's bridge to teacher endpoints (ml.endpoints, issue 17): whether a model version is
served by an OpenAI-compatible endpoint instead of weights on disk, and the client, generator and
judge built from its spec. The API key is read from this worker's environment by name (the spec
carries only the variable's name), never from the database. A use the endpoint's probed capability
cannot serve is refused here with the reason ml.endpoints.spec.methods_for gives, so a job fails
with a sentence instead of half-running; no teacher weights are ever loaded for an endpoint."""
import dataclasses


class EndpointRefused(ValueError):
    """The endpoint version cannot serve this use (unprobed, black-box for a token-level method ...)."""


def is_endpoint(version) -> bool:
    return bool(version is not None and getattr(version, "is_endpoint", False))


def spec_of(version):
    from ml.endpoints.spec import EndpointSpec

    return EndpointSpec.from_dict(version.endpoint_spec())


def client_for(version):
    from ml.endpoints.client import EndpointClient

    return EndpointClient(spec_of(version))


def check_use(version, use: str) -> None:
    """Raises EndpointRefused unless methods_for(version.capability) allows `use` ("generation",
    "judge:generative", a training method ...), with its reason."""
    from ml.endpoints.spec import methods_for

    rows = {name: (allowed, why) for name, allowed, why in methods_for(getattr(version, "capability", None))}
    allowed, why = rows.get(use, (False, f"{use} is not something an endpoint can serve"))
    if not allowed:
        raise EndpointRefused(f"{version.name} is an endpoint teacher and cannot serve {use}: {why}")


def generator(version):
    """An EndpointGenerator (ml.backends.Generator) for an endpoint version, its use checked first."""
    from ml.endpoints.generation import EndpointGenerator

    check_use(version, "generation")
    return EndpointGenerator(spec_of(version), capability=version.capability)


def judge(version, *, method: str = "generative", template: str | None = None, labels: tuple[str, str] = ("A", "B"),
          warn_below: float | None = None):
    """The generative judge on an endpoint (exact answer-token log-probs when the probe found it
    white-box), with the job's template, answer labels and answer-mass mark; the caller closes it
    (`close`). The likelihood and implicit-reward judges score sequences with the teacher's weights
    in this worker, so an endpoint refuses them."""
    if method != "generative":
        raise EndpointRefused(f"{version.name} is an endpoint teacher: the {method} judge scores responses with the "
                              "teacher's weights in the worker; an endpoint judges generatively only")
    from ml.config import DEFAULT_ANSWER_MASS_THRESHOLD, DEFAULT_JUDGE_TEMPLATE
    from ml.endpoints.judge import EndpointJudge

    check_use(version, "judge:generative")
    client = client_for(version)
    try:
        return EndpointJudge(client, template or DEFAULT_JUDGE_TEMPLATE, tuple(labels),
                             warn_below=DEFAULT_ANSWER_MASS_THRESHOLD if warn_below is None else warn_below,
                             capability=getattr(version, "capability", None))
    except Exception:
        client.close()
        raise


def close(thing) -> None:
    """Closes what holds an endpoint client (a judge, a generator); anything else is left alone."""
    closer = getattr(thing, "close", None)
    if callable(closer):
        closer()


def concurrency(version) -> int:
    return max(1, int(getattr(version, "concurrency", 0) or 1))


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "requests", "retries")


def usage_of(thing) -> dict:
    """Token and request counters of an endpoint client (or of a generator/judge holding one), as a
    plain dict of ints; {} when there are none."""
    usage = getattr(thing, "usage", None)
    if usage is None and getattr(thing, "client", None) is not None:
        usage = getattr(thing.client, "usage", None)
    if usage is None:
        return {}
    if dataclasses.is_dataclass(usage):
        usage = dataclasses.asdict(usage)
    elif not isinstance(usage, dict):
        usage = {key: getattr(usage, key, 0) for key in USAGE_KEYS}
    return {key: int(usage.get(key, 0) or 0) for key in USAGE_KEYS}


def usage_add(earlier: dict | None, now: dict) -> dict:
    """An attempt's counters on top of what earlier attempts recorded."""
    earlier = earlier or {}
    return {key: int(earlier.get(key, 0)) + int(now.get(key, 0)) for key in USAGE_KEYS}


def greedy_answers(version, inputs: list, *, max_new_tokens: int, on_progress=None) -> list:
    """One greedy answer per input from an endpoint version (as ml.pipeline.greedy_answers gives
    for weights), asked a few at a time (its concurrency) so on_progress(done, total) moves."""
    answers, size = [], concurrency(version)
    with generator(version) as endpoint:
        for start in range(0, len(inputs), size):
            outputs = endpoint.generate(inputs[start:start + size], k=1, temperature=0.0, top_p=1.0,
                                        max_new_tokens=max_new_tokens, seed=0)
            answers += [samples[0] for samples in outputs]
            if on_progress is not None:
                on_progress(len(answers), len(inputs))
    return answers


def no_teacher_signals(count: int) -> list[dict]:
    """Per-answer signal rows with nothing in them: the heatmap then says "not available"."""
    return [{"tokens": [], "teacher_logp": None, "kl": None, "advantage": None, "mean_kl": None}
            for _ in range(count)]


def teacher_signals(version, tokenizer, prompts: list, responses: list) -> list[dict]:
    """The endpoint teacher's log-prob of each token of each answer (ml.endpoints.signals, from
    prompt_logprobs on the answer tokenized by `tokenizer`, the student's), for the heatmap and the
    loop's priority; KL and advantage need the teacher's whole distribution, so they stay None. Empty
    rows when the endpoint gives no prompt log-probs. A student of another family (or none): the
    server's own tokens of the same answer text, since only the text crosses (issue 20)."""
    from ml.endpoints.signals import check_tokenizer_alignment, endpoint_token_signals
    from ml.modeling import TokenizerMismatchError

    if not (getattr(version, "capability", None) or {}).get("prompt_logprobs"):
        return no_teacher_signals(len(responses))
    client = client_for(version)
    try:
        if tokenizer is not None:
            try:
                check_tokenizer_alignment(client, tokenizer, texts=list(responses[:2]), method="the token heatmap")
            except TokenizerMismatchError:
                tokenizer = None
        return endpoint_token_signals(client, tokenizer, prompts, responses)
    finally:
        client.close()
