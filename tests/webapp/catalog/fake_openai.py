"""An OpenAI-compatible fake answering like vLLM started with --api-key (401 without the key): serves
one white-box model (/v1/models, chat with top_logprobs, /tokenize at the root, prompt_logprobs on
token-id prompts). Protocol behaviour is tested against the real vLLM server (fixture `vllm_server`);
this fake stays for what that server cannot do:
- fault injection: `transport(key, echo_key_on_tokenize=True)` (an httpx.MockTransport) is a hostile
  server that echoes the caller's Authorization header back in an error, for the key-secrecy test;
- `FakeServer(key)` (real HTTP, a thread) for the browser registration test, whose session-wide
  Celery workers hold only DISTILLERY_ENDPOINT_KEY_E2E (service_env's random key), not the vLLM
  test server's per-session key, so they could not authenticate to it."""
import json
from http.server import BaseHTTPRequestHandler

import httpx

from tests.ml.endpoints.fault_proxy import LocalServer

MODEL = {"id": "demo-teacher", "root": "/models/teacher", "max_model_len": 512, "owned_by": "vllm"}


def answer(key: str, path: str, authorization: str | None, body: dict, *, echo_key_on_tokenize=False):
    """(status, JSON-able body or text) for one request."""
    if authorization != f"Bearer {key}":
        return 401, {"error": "Unauthorized"}
    if path == "/v1/models":
        return 200, {"data": [MODEL]}
    if path == "/v1/chat/completions":
        top = body.get("top_logprobs") or 0
        logprobs = {"content": [{"token": "OK", "logprob": -0.1,
                                 "top_logprobs": [{"token": f"t{i}", "logprob": -i} for i in range(top)]}]}
        return 200, {"choices": [{"message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop",
                                  "logprobs": logprobs if body.get("logprobs") else None}]}
    if path == "/tokenize":
        if echo_key_on_tokenize:  # a server that echoes the request's header in an error
            return 404, f"no tokenize for {authorization}"
        return 200, {"tokens": [ord(c) % 97 for c in body.get("prompt", "")]}
    if path == "/v1/completions":
        k = body.get("prompt_logprobs") or 0
        positions = [None] + [{str(j): {"logprob": -1.0, "rank": j + 1} for j in range(k)} for _ in body["prompt"][1:]]
        return 200, {"choices": [{"text": "x", "prompt_logprobs": positions}]}
    return 404, {"error": "not found"}


def transport(key: str, **options):
    """(httpx.MockTransport, list of the paths it was asked for)."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status, payload = answer(key, request.url.path, request.headers.get("authorization"),
                                 json.loads(request.content or b"{}"), **options)
        return httpx.Response(status, text=payload) if isinstance(payload, str) else httpx.Response(status, json=payload)

    return httpx.MockTransport(handler), seen


class FakeServer(LocalServer):
    def __init__(self, key: str):
        outer = self
        self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def _reply(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                outer.paths.append(self.path)
                status, payload = answer(key, self.path, self.headers.get("authorization"), body)
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

            def log_message(self, *args):
                pass

        self._serve(Handler)
