"""What an OpenAI-compatible endpoint teacher is, in standard-library terms only, so the web process
can validate a registration with the same rules the workers apply: the endpoint's spec (URL, served
model, the NAME of the environment variable holding its API key, concurrency and limits), the
checks on that URL and that key reference, and which methods a probed capability allows, each with
its reason. Nothing here talks to a server (ml.endpoints.client does, in workers).

Capability records are what ml.endpoints.probe.probe returns (JSON): `kind` is WHITE_BOX when the
server scores given token ids (vLLM's `prompt_logprobs` on /v1/completions), BLACK_BOX when it only
chats (hosted APIs: top_logprobs on its own output at most)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from urllib.parse import urlsplit

KEY_ENV_PREFIX = "DISTILLERY_ENDPOINT_KEY_"
HOSTS_ENV = "DISTILLERY_ENDPOINT_HOSTS"
WHITE_BOX = "white-box"
BLACK_BOX = "black-box"
_KEY_ENV = re.compile(r"^DISTILLERY_ENDPOINT_KEY_[A-Z0-9_]{1,64}$")


def check_key_env(name: str) -> str:
    """The key's environment variable name, or '' (no key). Only DISTILLERY_ENDPOINT_KEY_* names are
    accepted, so a registration cannot point at SECRET_KEY or DATABASE_URL and have a worker send
    that value to a server of its choosing."""
    name = (name or "").strip()
    if name and not _KEY_ENV.match(name):
        raise ValueError(f"API key variable {name!r} is not allowed: it must be named "
                         f"{KEY_ENV_PREFIX}<NAME> (capitals, digits, '_'; up to 64 after the prefix)")
    return name


def check_endpoint_url(url: str, allowed_hosts: list[str]) -> str:
    """The normalised base URL ("scheme://host[:port]/path/v1", no trailing slash) of an endpoint at
    an allowed host. `allowed_hosts` entries are "host" (any port) or "host:port"; "*" is never
    implied, and an empty list means endpoints are off. http/https only; no user:password@, no
    query, no fragment. The URL may be given with or without its /v1 suffix."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint URL {text!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("endpoint URL must not carry user:password@; name the key's environment variable instead")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"endpoint URL {text!r} must not have a query or fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"endpoint URL {text!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"endpoint URL {text!r} has an invalid port") from None
    allowed = {h.strip().lower() for h in allowed_hosts if h and h.strip()}
    if not allowed:
        raise ValueError(f"endpoint teachers are off: set {HOSTS_ENV} (comma-separated host or host:port "
                         "entries) on the web and worker processes to allow some")
    netloc_host = f"[{host}]" if ":" in host else host
    if host not in allowed and (port is None or f"{netloc_host}:{port}" not in allowed):
        raise ValueError(f"host {netloc_host}{'' if port is None else f':{port}'} is not in {HOSTS_ENV} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{netloc_host}{'' if port is None else f':{port}'}{path}"


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint teacher. base_url ends in /v1 (check_endpoint_url); model is the served model
    name sent in every request; api_key_env names the variable the WORKER reads the key from (the
    key itself is never stored); concurrency bounds requests in flight; timeout_s is per request;
    rate_limit_per_s caps requests per second (0 = no cap); max_retries after the first try."""

    base_url: str
    model: str
    api_key_env: str = ""
    concurrency: int = 4
    timeout_s: float = 60.0
    rate_limit_per_s: float = 0.0
    max_retries: int = 4

    def __post_init__(self):
        check_key_env(self.api_key_env)
        if not self.base_url or not self.model:
            raise ValueError("an endpoint needs a base_url and a served model name")
        if not 1 <= int(self.concurrency) <= 256:
            raise ValueError(f"concurrency must be 1..256, got {self.concurrency}")
        if not 0 < float(self.timeout_s) <= 3600:
            raise ValueError(f"timeout_s must be in (0, 3600], got {self.timeout_s}")
        if not 0 <= float(self.rate_limit_per_s) <= 10_000:
            raise ValueError(f"rate_limit_per_s must be in [0, 10000], got {self.rate_limit_per_s}")
        if not 0 <= int(self.max_retries) <= 20:
            raise ValueError(f"max_retries must be 0..20, got {self.max_retries}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EndpointSpec":
        """Known keys only (unknown ones are ignored, so a stored dict may carry more); numbers coerced."""
        known = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        for name, cast in (("concurrency", int), ("timeout_s", float), ("rate_limit_per_s", float),
                           ("max_retries", int)):
            if name in values:
                values[name] = cast(values[name])
        return cls(**values)


GENERATION_USES = ("generation", "judge:generative", "judge:likelihood", "judge:implicit_reward")
TRAINING_METHODS = ("sft", "kd", "dckd", "adpa", "adpa_plus", "dpo", "taid", "redi")

_WHY_WHITE = {
    "generation": (True, "chat completions: the server's chat template applies"),
    "judge:generative": (True, "asks 'A or B?' in both orders; P from the answer token's top_logprobs"),
    "judge:likelihood": (True, "scores the responses' tokens with prompt_logprobs"),
    "judge:implicit_reward": (True, "needs TWO white-box endpoints (pi_dpo and pi_sft) with one tokenizer"),
    "sft": (True, "text only: the teacher's generations as targets (sequence-level KD)"),
    "kd": (False, "the kd recipe needs the teacher's full logits in the training loop (and on-policy samples); "
                  "use dckd, which reads the endpoint's top-K once"),
    "dckd": (True, "teacher top-K from prompt_logprobs on the pairs, sent as the student's token ids "
                   "(shared tokenizer checked first; temperature 1 only)"),
    "adpa": (True, "needs TWO white-box endpoints, pi_sft and pi_dpo, sharing the student's tokenizer"),
    "adpa_plus": (True, "needs TWO white-box endpoints, pi_sft and pi_dpo, sharing the student's tokenizer"),
    "dpo": (True, "text only: preference pairs; the teacher is not needed"),
    "taid": (False, "TAID interpolates full teacher logits inside the training loop; an endpoint serves top-K only"),
    "redi": (True, "text only: positive and negative traces"),
}

_BLACK_REFUSED = "a black-box endpoint gives no log-probabilities of given tokens (no prompt_logprobs)"
_WHY_BLACK = dict(_WHY_WHITE, **{
    "judge:generative": (True, "asks 'A or B?' in both orders; P from top_logprobs when the server gives "
                               "them, else from the parsed answer"),
    "judge:likelihood": (False, _BLACK_REFUSED),
    "judge:implicit_reward": (False, _BLACK_REFUSED),
    "dckd": (False, _BLACK_REFUSED + "; DCKD needs the teacher's top-K at every response position"),
    "adpa": (False, _BLACK_REFUSED + "; ADPA needs token advantages from pi_dpo and pi_sft"),
    "adpa_plus": (False, _BLACK_REFUSED + "; ADPA+ needs token advantages from pi_dpo and pi_sft"),
})


def methods_for(capability: dict | None) -> list[tuple[str, bool, str]]:
    """(method or use, allowed, why) for every use in GENERATION_USES and method in TRAINING_METHODS,
    given a probe's capability record. None (not probed yet, or the probe failed): nothing allowed,
    "probe pending". An endpoint whose chat failed in the probe serves nothing that chats."""
    names = GENERATION_USES + TRAINING_METHODS
    if not capability:
        return [(name, False, "probe pending") for name in names]
    table = _WHY_WHITE if capability.get("kind") == WHITE_BOX else _WHY_BLACK
    chat_needed = {"generation", "judge:generative", "sft"}
    rows = []
    for name in names:
        allowed, why = table[name]
        if name in chat_needed and not capability.get("chat", False):
            allowed, why = False, "the probe's chat completion failed"
        rows.append((name, allowed, why))
    return rows
