"""ml.endpoints.client without a server: pure retry-timing, rate-limit, error-mapping and key-hygiene
unit tests over httpx.MockTransport (canned status codes only; no OpenAI protocol is imitated here —
protocol behaviour is tested against the real vLLM server in test_protocol.py). Sleeps go to a list,
so the delays asked for are checked exactly, without waiting."""
import logging
import random
import threading
import time

import httpx
import pytest

from ml.endpoints.client import (EndpointAuthError, EndpointClient, EndpointRequestError, EndpointUnavailable,
                                 TokenBucket, backoff_delay, retry_after_seconds)
from ml.endpoints.spec import EndpointSpec

KEY = "sk-very-secret-0123456789"
ENV = {"DISTILLERY_ENDPOINT_KEY_UNIT": KEY}


def _client(handler, *, retries=2, rate=0.0, concurrency=2, sleeps=None):
    spec = EndpointSpec("http://127.0.0.1:9/v1", "m", "DISTILLERY_ENDPOINT_KEY_UNIT", concurrency=concurrency,
                        max_retries=retries, rate_limit_per_s=rate, timeout_s=5)
    sleeps = [] if sleeps is None else sleeps
    return EndpointClient(spec, env=ENV, transport=httpx.MockTransport(handler), sleep=sleeps.append,
                          rng=random.Random(0)), sleeps


def _script(*steps):
    """A handler answering each request with the next step: a status code, (status, headers) or an exception."""
    calls = []

    def handler(request):
        calls.append(request)
        step = steps[min(len(calls) - 1, len(steps) - 1)]
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        body = {"data": [{"id": "m"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}} if status == 200 \
            else {"error": f"status {status}"}
        return httpx.Response(status, json=body, headers=headers)
    return handler, calls


def test_backoff_is_exponential_with_equal_jitter():
    rng = random.Random(0)
    for attempt, (low, high) in enumerate([(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)]):
        assert low <= backoff_delay(attempt, base=0.5, cap=30, rng=rng) <= high
    assert 15 <= backoff_delay(10, base=0.5, cap=30, rng=rng) <= 30  # 0.5 * 2**10 = 512, capped at 30


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0


def test_429_honours_retry_after_then_succeeds():
    handler, calls = _script((429, {"Retry-After": "7"}), 200)
    client, sleeps = _client(handler)
    assert client.models() == [{"id": "m"}]
    assert len(calls) == 2 and sleeps == [7.0]  # backoff for attempt 0 is <= 0.5 s: Retry-After wins
    assert (client.usage.requests, client.usage.retries, client.usage.prompt_tokens) == (2, 1, 3)


def test_5xx_and_timeouts_retried_until_exhausted():
    handler, calls = _script(500, httpx.ReadTimeout("slow"), 503)
    client, sleeps = _client(handler, retries=2)
    with pytest.raises(EndpointUnavailable, match=r"failed 3 time\(s\); last: HTTP 503"):
        client.chat({"messages": []})
    assert len(calls) == 3 and len(sleeps) == 2  # no sleep after the last try
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_connection_error_retried_then_ok():
    handler, calls = _script(httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped"), 200)
    client, _ = _client(handler)
    assert client.models() == [{"id": "m"}] and len(calls) == 3


def test_other_4xx_is_not_retried():
    handler, calls = _script(400)
    client, sleeps = _client(handler)
    with pytest.raises(EndpointRequestError, match="HTTP 400") as caught:
        client.completions({"prompt": "x"})
    assert caught.value.status == 400 and len(calls) == 1 and sleeps == []


def test_sends_bearer_key_and_model():
    handler, calls = _script(200)
    client, _ = _client(handler)
    client.chat({"messages": [{"role": "user", "content": "hi"}]})
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    assert b'"model":"m"' in calls[0].content.replace(b" ", b"")
    assert str(calls[0].url) == "http://127.0.0.1:9/v1/chat/completions"


def test_tokenize_goes_to_the_server_root():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(200, json={"tokens": [1, 2], "count": 2})
    client, _ = _client(handler)
    assert client.tokenize("ab") == [1, 2]
    assert str(calls[0].url) == "http://127.0.0.1:9/tokenize"


def test_token_bucket_spaces_requests():
    now = [100.0]
    sleeps = []
    bucket = TokenBucket(2.0, clock=lambda: now[0], sleep=sleeps.append)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.5, 1.0]  # all at t=100: slots 100, 100.5, 101
    now[0] = 105.0
    assert bucket.acquire() == 0.0 and sleeps == [0.5, 1.0]
    assert TokenBucket(0).acquire() == 0.0


def test_map_bounds_concurrency_and_delivers_in_caller_thread():
    handler, _ = _script(200)
    client, _ = _client(handler, concurrency=3)
    running, peak, lock = [0], [0], threading.Lock()
    caller, seen = threading.get_ident(), []

    def work(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return x * x

    results = client.map(work, range(12), on_result=lambda i, r: seen.append((i, r, threading.get_ident())))
    assert results == [x * x for x in range(12)] and peak[0] <= 3
    assert sorted((i, r) for i, r, _ in seen) == [(x, x * x) for x in range(12)]
    assert {t for _, _, t in seen} == {caller}


def test_map_raises_first_error_and_keeps_delivered_results():
    handler, _ = _script(200)
    client, _ = _client(handler, concurrency=1)
    delivered = []

    def work(x):
        if x == 2:
            raise EndpointUnavailable("boom")
        return x
    with pytest.raises(EndpointUnavailable, match="boom"):
        client.map(work, range(6), on_result=lambda i, r: delivered.append(i))
    assert {0, 1} <= set(delivered) and 2 not in delivered and len(delivered) <= 3  # 0, 1 and maybe 3 (in flight)


def test_map_stops_submitting_when_asked():
    handler, _ = _script(200)
    client, _ = _client(handler, concurrency=1)
    delivered = []
    results = client.map(lambda x: x, range(10), on_result=lambda i, r: delivered.append(i),
                         should_stop=lambda: len(delivered) >= 3)
    assert results[:3] == [0, 1, 2] and results[-1] is None


def test_missing_key_variable_is_a_clear_auth_error():
    spec = EndpointSpec("http://127.0.0.1:9/v1", "m", "DISTILLERY_ENDPOINT_KEY_ABSENT")
    with pytest.raises(EndpointAuthError, match=r"\$DISTILLERY_ENDPOINT_KEY_ABSENT is not set"):
        EndpointClient(spec, env={})


def test_key_never_in_repr_errors_or_logs(caplog):
    """401 and a server that echoes the key back in a 400 and 500 body: neither the exception texts
    (with their chains), nor repr/str, nor any log record at DEBUG from any logger carry the key."""
    echo = f"your header was Bearer {KEY}"
    steps = iter([httpx.Response(500, text=echo), httpx.Response(500, text=echo), httpx.Response(500, text=echo),
                  httpx.Response(400, text=echo), httpx.Response(401, text=echo)])
    client, _ = _client(lambda request: next(steps))
    texts = [repr(client), str(client), repr(client.__dict__)]
    caplog.set_level(logging.DEBUG)
    for call in (client.models, client.models, client.models):
        try:
            call()
        except Exception as error:  # noqa: BLE001
            texts += [str(error), repr(error), repr(error.__cause__), repr(error.__context__)]
    assert any("refused the API key from $DISTILLERY_ENDPOINT_KEY_UNIT" in t for t in texts)
    assert any("[key]" in t for t in texts)  # the echoed key was masked, not dropped silently
    texts += [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if KEY in t]
