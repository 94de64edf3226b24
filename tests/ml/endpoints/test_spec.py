"""ml.endpoints.spec: key-variable names, endpoint URLs against the allowed hosts, the spec's
round trip, and which methods a capability allows (hand-listed expectations)."""
import subprocess
import sys

import pytest

from ml.endpoints.spec import (BLACK_BOX, WHITE_BOX, EndpointSpec, check_endpoint_url, check_key_env,
                               methods_for)


@pytest.mark.parametrize("name", ["DISTILLERY_ENDPOINT_KEY_TEST", "DISTILLERY_ENDPOINT_KEY_A1_B2", ""])
def test_key_env_accepts_endpoint_key_names(name):
    assert check_key_env(name) == name


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "DISTILLERY_ENDPOINT_KEY_", "distillery_endpoint_key_x",
                                  "DISTILLERY_ENDPOINT_KEY_X-Y", "DISTILLERY_ENDPOINT_KEY_" + "A" * 65,
                                  "XDISTILLERY_ENDPOINT_KEY_A"])
def test_key_env_refuses_anything_else(name):
    with pytest.raises(ValueError, match="DISTILLERY_ENDPOINT_KEY_"):
        check_key_env(name)


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1"),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765/v1"),
    ("http://127.0.0.1:8765/v1/", "http://127.0.0.1:8765/v1"),
    ("https://API.example.com/openai/", "https://api.example.com/openai/v1"),
])
def test_endpoint_url_normalised(url, expected):
    assert check_endpoint_url(url, ["127.0.0.1", "api.example.com"]) == expected


def test_host_port_entries_only_allow_that_port():
    assert check_endpoint_url("http://127.0.0.1:8765", ["127.0.0.1:8765"]) == "http://127.0.0.1:8765/v1"
    with pytest.raises(ValueError, match="DISTILLERY_ENDPOINT_HOSTS"):
        check_endpoint_url("http://127.0.0.1:5432", ["127.0.0.1:8765"])


@pytest.mark.parametrize("url, why", [
    ("ftp://127.0.0.1/v1", "http"),
    ("file:///etc/passwd", "http"),
    ("http://user:pw@127.0.0.1/v1", "user:password"),
    ("http://127.0.0.1/v1?x=1", "query"),
    ("http://127.0.0.1/v1#frag", "query or fragment"),
    ("http://10.0.0.1/v1", "not in DISTILLERY_ENDPOINT_HOSTS"),
    ("http://127.0.0.1.evil.com/v1", "not in DISTILLERY_ENDPOINT_HOSTS"),
    ("http:///v1", "no host"),
])
def test_bad_urls_refused(url, why):
    with pytest.raises(ValueError, match=why):
        check_endpoint_url(url, ["127.0.0.1"])


def test_no_allowed_hosts_means_endpoints_off():
    with pytest.raises(ValueError, match="endpoint teachers are off: set DISTILLERY_ENDPOINT_HOSTS"):
        check_endpoint_url("http://127.0.0.1/v1", [])
    with pytest.raises(ValueError, match="not in"):  # "*" is a host name like any other, never a wildcard
        check_endpoint_url("http://127.0.0.1/v1", ["*"])


def test_spec_round_trip_and_coercion():
    spec = EndpointSpec("http://127.0.0.1:8765/v1", "teacher", "DISTILLERY_ENDPOINT_KEY_TEST", concurrency=2)
    assert EndpointSpec.from_dict(spec.to_dict()) == spec
    stored = {"base_url": "http://h/v1", "model": "m", "concurrency": "3", "timeout_s": 5, "extra": 1,
              "api_key_env": None}
    assert EndpointSpec.from_dict(stored) == EndpointSpec("http://h/v1", "m", "", 3, 5.0)


@pytest.mark.parametrize("field, value", [("concurrency", 0), ("timeout_s", 0), ("rate_limit_per_s", -1),
                                          ("max_retries", 21), ("api_key_env", "SECRET_KEY")])
def test_spec_refuses_bad_values(field, value):
    with pytest.raises(ValueError):
        EndpointSpec("http://h/v1", "m", **{field: value})


def _allowed(capability):
    return {name: allowed for name, allowed, _ in methods_for(capability)}


def test_unprobed_endpoint_allows_nothing():
    rows = methods_for(None)
    assert {why for _, _, why in rows} == {"probe pending"} and not any(a for _, a, _ in rows)


def test_white_box_allows_top_k_methods_and_refuses_full_logit_ones():
    allowed = _allowed({"kind": WHITE_BOX, "chat": True})
    assert [n for n, a in allowed.items() if not a] == ["kd", "taid"]
    why = dict((n, w) for n, _, w in methods_for({"kind": WHITE_BOX, "chat": True}))
    assert "TWO white-box endpoints" in why["adpa"] and "TWO white-box endpoints" in why["judge:implicit_reward"]


def test_black_box_allows_text_only_methods():
    allowed = _allowed({"kind": BLACK_BOX, "chat": True})
    assert sorted(n for n, a in allowed.items() if a) == ["dpo", "generation", "judge:generative", "redi", "sft"]
    why = dict((n, w) for n, _, w in methods_for({"kind": BLACK_BOX, "chat": True}))
    assert "no log-probabilities" in why["dckd"]


def test_failed_chat_refuses_chat_uses():
    allowed = _allowed({"kind": BLACK_BOX, "chat": False})
    assert sorted(n for n, a in allowed.items() if a) == ["dpo", "redi"]


def test_spec_module_is_standard_library_only():
    code = ("import sys; import ml.endpoints.spec; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('httpx', 'torch', 'transformers', 'django')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
