"""What an endpoint can do, found by asking it (run by a worker when a model version is registered or
re-probed): the served model as the server lists it, whether chat works, whether chat returns
log-probs and how many alternatives (top_logprobs) it allows, whether /v1/completions scores token-id
prompts with `prompt_logprobs` (vLLM's extension: what makes an endpoint WHITE_BOX), and a
fingerprint of its tokenizer from vLLM's /tokenize. The record is plain JSON, stored on the model
version and read by ml.endpoints.spec.methods_for:

    {"kind": "white-box" | "black-box", "served_model": str,
     "model": {"id", "root", "max_model_len", "owned_by"} (what /v1/models says; None where absent),
     "chat": bool, "logprobs": bool, "top_logprobs_max": int (0 = none),
     "prompt_logprobs": int (top-K per prompt position the server gave; 0 = none),
     "tokenize": bool, "tokenizer_fingerprint": str | None, "notes": {step: why it failed},
     "checked_at": ISO-8601 UTC}

Auth errors and an unreachable server propagate (EndpointAuthError / EndpointUnavailable): the probe
failed, and the caller stores why. A feature the server refuses (HTTP 4xx) is just absent."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Callable

from ml.endpoints.client import EndpointClient, EndpointError, EndpointRequestError
from ml.endpoints.spec import BLACK_BOX, WHITE_BOX

# Texts whose token ids fingerprint a tokenizer: words, digits, spaces, punctuation, non-ASCII.
FINGERPRINT_TEXTS = ("Hello, world!", "  two  spaces and\ttab\nnewline", "12345 + 678 = 13023",
                     "reverse: apple banana cherry", "naïve café – 東京 🙂", "The end.</s><|eot_id|>")


def tokenizer_fingerprint(tokenize: Callable[[str], list[int]]) -> str:
    """sha256 over the ids of FINGERPRINT_TEXTS (no special tokens added), so a server's /tokenize and
    a local tokenizer can be compared: `tokenizer_fingerprint(lambda t: tok(t,
    add_special_tokens=False)["input_ids"])` equals the probe's when both tokenize identically."""
    ids = [list(map(int, tokenize(text))) for text in FINGERPRINT_TEXTS]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def _model_entry(client: EndpointClient) -> dict:
    served = client.models()
    for entry in served:
        if entry.get("id") == client.spec.model:
            return {name: entry.get(name) for name in ("id", "root", "max_model_len", "owned_by")}
    names = ", ".join(str(e.get("id")) for e in served) or "nothing"
    raise EndpointError(f"the server at {client.root_url} does not serve {client.spec.model!r} (it serves: {names})")


def _chat_logprobs(client: EndpointClient, top: int) -> bool:
    """True when a chat completion with top_logprobs=`top` answers with per-token log-probs."""
    body = client.chat({"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2, "temperature": 0,
                        "logprobs": True, "top_logprobs": top})
    content = ((body["choices"][0].get("logprobs") or {}).get("content")) or []
    return bool(content) and len(content[0].get("top_logprobs") or []) >= min(top, 1)


def _prompt_logprobs(client: EndpointClient, ids: list[int], top_k: int) -> int:
    """How many ranked alternatives /v1/completions gives per position of a token-id prompt (0: none)."""
    body = client.completions({"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": top_k})
    positions = body["choices"][0].get("prompt_logprobs") or []
    scored = [p for p in positions[1:] if p]
    if len(positions) != len(ids) or not scored:
        return 0
    return min(sum(1 for v in p.values() if int(v.get("rank") or 10**9) <= top_k) for p in scored)


def probe(client: EndpointClient, *, top_k: int = 50) -> dict:
    """The capability record of `client`'s endpoint (see the module docstring); about 6-10 requests."""
    notes: dict = {}
    record = {"served_model": client.spec.model, "model": _model_entry(client), "chat": False, "logprobs": False,
              "top_logprobs_max": 0, "prompt_logprobs": 0, "tokenize": False, "tokenizer_fingerprint": None}
    try:
        client.chat({"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2, "temperature": 0})
        record["chat"] = True
    except EndpointRequestError as error:
        notes["chat"] = str(error)
    for top in sorted({top_k, 20, 5, 1}, reverse=True):
        if not record["chat"]:
            break
        try:
            if _chat_logprobs(client, top):
                record["logprobs"], record["top_logprobs_max"] = True, top
                break
        except EndpointRequestError as error:
            notes.setdefault("top_logprobs", str(error))
    try:
        record["tokenizer_fingerprint"] = tokenizer_fingerprint(lambda text: client.tokenize(
            text, add_special_tokens=False))
        record["tokenize"] = True
    except (EndpointRequestError, KeyError, TypeError, ValueError) as error:
        notes["tokenize"] = str(error) or type(error).__name__
    if record["tokenize"]:
        try:
            record["prompt_logprobs"] = _prompt_logprobs(client, client.tokenize("Hello, world! 1 2 3"), top_k)
        except (EndpointRequestError, KeyError, TypeError, ValueError) as error:
            notes["prompt_logprobs"] = str(error) or type(error).__name__
    white = record["tokenize"] and record["prompt_logprobs"] >= 1
    record.update(kind=WHITE_BOX if white else BLACK_BOX, notes=notes,
                  checked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record
