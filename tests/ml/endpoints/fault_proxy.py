"""A small fault-injecting HTTP proxy (standard library only) for tests: it sits in front of the REAL
vLLM server and forwards every request to it unchanged, except those a test's `rule` picks to fail:
a status with an optional Retry-After (429, 500, ...), a connection dropped without an answer, or
an answer held back longer than the client's timeout. It never invents an OpenAI response: whatever
succeeds came from the server. `rule(path, body) -> action | None`; actions:
("status", code, retry_after_or_None), ("drop",), ("delay", seconds)."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """A stdlib HTTP server on 127.0.0.1:<free port> in a daemon thread, for the test doubles here and
    in tests/webapp/catalog/fake_openai.py: `_serve(Handler)` in __init__, `with` starts and stops it."""

    def _serve(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
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


class FaultProxy(LocalServer):
    def __init__(self, upstream_root: str, rule=None):
        self.upstream_root = upstream_root.rstrip("/")
        self.rule = rule or (lambda path, body: None)
        self.seen: list[tuple[str, dict | None, str]] = []  # (path, json body, what happened)
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                action = proxy.rule(self.path, body)
                with proxy.lock:
                    proxy.seen.append((self.path, body, action[0] if action else "forwarded"))
                if action and action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action and action[0] == "status":
                    payload = json.dumps({"error": {"message": "injected", "code": action[1]}}).encode()
                    self.send_response(action[1])
                    if action[2] is not None:
                        self.send_header("Retry-After", str(action[2]))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action and action[0] == "delay":
                    time.sleep(action[1])
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                request = urllib.request.Request(proxy.upstream_root + self.path, data=raw or None, method=method,
                                                 headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        status, data, ctype = response.status, response.read(), response.headers.get("Content-Type")
                except urllib.error.HTTPError as error:
                    status, data, ctype = error.code, error.read(), error.headers.get("Content-Type")
                except (urllib.error.URLError, OSError):  # upstream gone (a late, delayed request at teardown)
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype or "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self._serve(Handler)


    def happened(self, path_part: str = "") -> list[str]:
        with self.lock:
            return [what for path, _, what in self.seen if path_part in path]
