"""A small OpenAI-compatible server for worker tests (standard library only, a thread in the test
process): /v1/models, /v1/chat/completions (n choices, logprobs and top_logprobs when asked, usage),
and switches a test flips: `reply(messages) -> str` decides each answer, `die_after` turns every
request after that many into a 503 (an endpoint that goes down mid-job), `requests` counts them."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEndpoint:
    def __init__(self, *, model: str = "fake-teacher", reply=None):
        self.model, self.reply = model, reply or (lambda messages: "42")
        self.die_after: int | None = None
        self.requests, self.chat_requests = 0, []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _count(self) -> bool:
        """True when this request should fail (the endpoint is down)."""
        with self._lock:
            self.requests += 1
            return self.die_after is not None and self.requests > self.die_after

    def _chat(self, payload: dict) -> dict:
        self.chat_requests.append(payload)
        text = self.reply(payload.get("messages") or [])
        words = text.split() or [""]
        choices = []
        for index in range(int(payload.get("n") or 1)):
            choice = {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if payload.get("logprobs"):
                k = int(payload.get("top_logprobs") or 0)
                top = [{"token": "~", "logprob": -4.0}] * max(0, k - 1)  # no answer label among the alternatives
                choice["logprobs"] = {"content": [{"token": w, "logprob": -0.1,
                                                   "top_logprobs": ([{"token": w, "logprob": -0.1}] + top)[:k]}
                                                  for w in words]}
            choices.append(choice)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in payload.get("messages") or [])
        return {"id": "chatcmpl-fake", "object": "chat.completion", "model": self.model, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words) * len(choices),
                          "total_tokens": prompt_tokens + len(words) * len(choices)}}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if fake._count():
                    return self._send(503, {"error": {"message": "down"}})
                if self.path.rstrip("/").endswith("/v1/models"):
                    return self._send(200, {"object": "list", "data": [{"id": fake.model, "root": fake.model,
                                                                        "max_model_len": 2048}]})
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if fake._count():
                    return self._send(503, {"error": {"message": "the fake endpoint is down"}})
                if self.path.endswith("/v1/chat/completions"):
                    return self._send(200, fake._chat(payload))
                self._send(404, {"error": {"message": f"{self.path} is not served here"}})

        return Handler
