"""The HTTP side of an endpoint teacher: one EndpointClient per EndpointSpec, holding a pooled httpx
client, the API key (read once from the environment variable the spec names, kept private, never
in repr, exceptions or logs: server texts are scrubbed of it too), a token-bucket rate limit, and
retries with exponential backoff and jitter on 429 (Retry-After honoured), 5xx, connection errors
and timeouts. 401/403 raise EndpointAuthError at once; other 4xx raise EndpointRequestError (the
request itself is wrong: retrying cannot help). `map` runs a function over items on a bounded
thread pool (spec.concurrency) and hands each result to a callback in the caller's thread as it
arrives, so a worker can store results one by one and a rerun resumes where the last one stopped.

Routes: /v1/models, /v1/chat/completions, /v1/completions under base_url; vLLM's /tokenize and
/detokenize at the server root (base_url without its /v1)."""
from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable

import httpx

from ml.endpoints.spec import EndpointSpec, check_key_env

log = logging.getLogger(__name__)
RETRY_AFTER_CAP_S = 300.0  # a Retry-After longer than this is cut to it (and logged)


class EndpointError(RuntimeError):
    """Anything that went wrong talking to an endpoint (messages never contain the API key)."""


class EndpointAuthError(EndpointError):
    """The endpoint refused the key (401/403), or the key's variable is not set here."""


class EndpointUnavailable(EndpointError):
    """Retries exhausted on 429/5xx/connection errors/timeouts; says what failed last and how often."""


class EndpointRequestError(EndpointError):
    """The server rejected the request itself (4xx other than 401/403/429): not retried."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass
class Usage:
    """Counters over the client's life: requests the server answered (any status), retries (tries
    after the first, whatever failed), and the token counts servers report in `usage`."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TokenBucket:
    """At most `rate` acquisitions per second (bucket of one: strict spacing 1/rate); 0 = no limit.
    Thread-safe; each caller reserves the next slot under the lock and sleeps outside it."""

    def __init__(self, rate: float, *, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """Block until this caller's slot; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = self.clock()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        wait_s = slot - now
        if wait_s > 0:
            self.sleep(wait_s)
        return wait_s


class _BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <key>` to each request. The key lives only here: its repr (and
    so the client's vars, a traceback's locals) shows the variable's name, never the value."""

    __slots__ = ("_key", "_env")

    def __init__(self, key: str, env_name: str):
        self._key, self._env = key, env_name

    def auth_flow(self, request):
        if self._key:
            request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "[key]") if self._key else text

    def __repr__(self) -> str:
        return f"<API key from ${self._env}>" if self._key else "<no API key>"


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds ("3", "1.5") or an HTTP date; None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: d = min(cap, base * 2**attempt), delay in [d/2, d]."""
    d = min(cap, base * (2 ** attempt))
    return d / 2 + rng.uniform(0, d / 2)


class EndpointClient:
    """Requests to one endpoint. `env` is where the key is read (os.environ by default); `transport`
    (an httpx transport) and `sleep`/`clock`/`rng` are for tests of retry timing."""

    def __init__(self, spec: EndpointSpec, *, env=None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock=time.monotonic,
                 rng: random.Random | None = None, backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0):
        self.spec = spec
        self.key_env = check_key_env(spec.api_key_env)
        env = os.environ if env is None else env
        if self.key_env and not env.get(self.key_env):
            raise EndpointAuthError(f"the API key variable ${self.key_env} is not set in this process's "
                                    "environment (set it where the workers run)")
        self._auth = _BearerAuth(env.get(self.key_env, "") if self.key_env else "", self.key_env)
        self.base_url = spec.base_url.rstrip("/")
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.sleep, self.rng = sleep, rng or random.Random()
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.bucket = TokenBucket(spec.rate_limit_per_s, clock=clock, sleep=sleep)
        self.usage = Usage()
        self._usage_lock = threading.Lock()
        timeout = httpx.Timeout(spec.timeout_s, connect=min(10.0, spec.timeout_s))
        limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
        self._http = httpx.Client(timeout=timeout, limits=limits, transport=transport, follow_redirects=False)

    def __repr__(self) -> str:
        key = f"key from ${self.key_env}" if self.key_env else "no key"
        return f"EndpointClient({self.base_url!r}, model={self.spec.model!r}, {key})"

    __str__ = __repr__

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        """Server-provided text, cut to 300 characters, with the key (should a server echo it) masked."""
        return self._auth.scrub(str(text)[:300])

    def _count(self, **deltas) -> None:
        with self._usage_lock:
            for name, value in deltas.items():
                setattr(self.usage, name, getattr(self.usage, name) + int(value or 0))

    def request(self, method: str, url: str, payload: dict | None = None) -> dict:
        """One JSON call with retries. Returns the decoded JSON body (a dict)."""
        path = url[len(self.root_url):] or "/"
        last, tries = "", 0
        for attempt in range(self.spec.max_retries + 1):
            if attempt:
                self._count(retries=1)
            self.bucket.acquire()
            tries += 1
            retry_after = None
            try:
                response = self._http.request(method, url, json=payload, auth=self._auth)
            except httpx.TimeoutException as error:
                last = f"timed out after {self.spec.timeout_s:g} s ({type(error).__name__})"
            except httpx.TransportError as error:
                last = f"connection failed ({type(error).__name__}: {self._scrub(error)})"
            else:
                self._count(requests=1)
                status = response.status_code
                if status in (401, 403):
                    who = f"the API key from ${self.key_env}" if self.key_env else "requests without an API key"
                    raise EndpointAuthError(f"the endpoint {self.root_url} refused {who} (HTTP {status} on {path})")
                if status == 429 or status >= 500:
                    last = f"HTTP {status}: {self._scrub(response.text)}"
                    retry_after = retry_after_seconds(response.headers.get("retry-after")) if status == 429 else None
                elif status >= 400:
                    raise EndpointRequestError(f"{method} {path} was rejected (HTTP {status}): "
                                               f"{self._scrub(response.text)}", status)
                else:
                    try:
                        body = response.json()
                    except ValueError:
                        raise EndpointError(f"{method} {path} answered HTTP {status} with a body that is not "
                                            f"JSON: {self._scrub(response.text)[:120]!r}") from None
                    usage = body.get("usage") if isinstance(body, dict) else None
                    if isinstance(usage, dict):
                        self._count(prompt_tokens=usage.get("prompt_tokens"),
                                    completion_tokens=usage.get("completion_tokens"))
                    return body
            if attempt == self.spec.max_retries:
                break
            delay = backoff_delay(attempt, base=self.backoff_base_s, cap=self.backoff_cap_s, rng=self.rng)
            if retry_after is not None:
                if retry_after > RETRY_AFTER_CAP_S:
                    log.warning("endpoint %s asked to retry after %.0f s; waiting %.0f s", self.root_url,
                                retry_after, RETRY_AFTER_CAP_S)
                delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
            log.info("endpoint %s %s: %s; retry %d/%d in %.2f s", self.root_url, path, last, attempt + 1,
                     self.spec.max_retries, delay)
            self.sleep(delay)
        raise EndpointUnavailable(f"{method} {path} at {self.root_url} failed {tries} time(s); last: {last}")

    # -- routes -------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """/v1/models `data`: [{id, root, max_model_len, owned_by, ...}] (vLLM; hosted APIs give less)."""
        return list(self.request("GET", f"{self.base_url}/models").get("data", []))

    def completions(self, payload: dict) -> dict:
        """POST /v1/completions; `model` defaults to the spec's served model."""
        return self.request("POST", f"{self.base_url}/completions", {"model": self.spec.model, **payload})

    def chat(self, payload: dict) -> dict:
        """POST /v1/chat/completions; `model` defaults to the spec's served model."""
        return self.request("POST", f"{self.base_url}/chat/completions", {"model": self.spec.model, **payload})

    def tokenize(self, text: str | None = None, *, messages: list[dict] | None = None,
                 add_special_tokens: bool | None = None, add_generation_prompt: bool = True,
                 continue_final_message: bool = False) -> list[int]:
        """Token ids from vLLM's /tokenize (server root): of `text`, or of `messages` rendered by the
        server's chat template (add_generation_prompt: ending with the assistant's turn opener;
        continue_final_message: ending inside the last (assistant) message, as the model would go on).
        add_special_tokens None = the server's default (vLLM: True for text, False for messages)."""
        if (text is None) == (messages is None):
            raise ValueError("tokenize takes text or messages, not both")
        payload = {"model": self.spec.model}
        if messages is None:
            payload["prompt"] = text
        else:
            payload.update(messages=messages, add_generation_prompt=add_generation_prompt)
            if continue_final_message:
                payload.update(add_generation_prompt=False, continue_final_message=True)
        if add_special_tokens is not None:
            payload["add_special_tokens"] = add_special_tokens
        return [int(t) for t in self.request("POST", f"{self.root_url}/tokenize", payload)["tokens"]]

    def detokenize(self, ids: list[int]) -> str:
        return str(self.request("POST", f"{self.root_url}/detokenize",
                                {"model": self.spec.model, "tokens": list(ids)})["prompt"])

    # -- concurrency --------------------------------------------------------------------------
    def map(self, fn: Callable, items: Iterable, on_result: Callable | None = None,
            should_stop: Callable[[], bool] | None = None) -> list:
        """[fn(item) for item in items], at most spec.concurrency at a time. `on_result(index, result)`
        runs in the CALLER's thread as each result arrives (any order), so it may use the caller's
        database connection. The first error stops submitting and is raised once the running calls
        end; every call that succeeded, before or after it, is still delivered. `should_stop()` (checked as
        results arrive) stops submitting; items never run get None in the returned list."""
        items = list(items)
        results: list = [None] * len(items)
        if not items:
            return results
        with ThreadPoolExecutor(max_workers=self.spec.concurrency, thread_name_prefix="endpoint") as pool:
            pending, next_index, error = {}, 0, None
            while next_index < len(items) or pending:
                while (error is None and next_index < len(items) and len(pending) < 2 * self.spec.concurrency
                       and not (should_stop and should_stop())):
                    pending[pool.submit(fn, items[next_index])] = next_index
                    next_index += 1
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    if future.exception() is not None:
                        error = error or future.exception()
                        continue
                    results[index] = future.result()
                    if on_result is not None:
                        on_result(index, results[index])
                if error is not None:
                    next_index = len(items)
        if error is not None:
            raise error
        return results
