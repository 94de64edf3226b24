"""distillery_client on its own: it imports neither Django nor torch (a pip install of
clients/python brings only httpx), its CLI turns --set pairs into a nested config, and the client
reports the server's field paths and follows a job to its end (httpx's MockTransport, no server)."""
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from distillery_client import Distillery, DistilleryError, JobFailed
from distillery_client.cli import _config

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"


def test_installs_with_httpx_only_and_imports_no_server_code():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["httpx"]
    assert project["scripts"] == {"distillery": "distillery_client.cli:main"}
    code = ("import sys; sys.path.insert(0, %r); import distillery_client, distillery_client.cli; "
            "bad = [m for m in ('django', 'torch', 'webapp', 'ml', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))" % str(CLIENT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_set_pairs_become_a_nested_config():
    assert _config(["max_steps=4", "dckd.alpha_w=0.5", "lr_scheduler=constant", "lora=true", "learning_rate=1e-4"]) == {
        "max_steps": 4, "dckd": {"alpha_w": 0.5}, "lr_scheduler": "constant", "lora": True, "learning_rate": 1e-4}


def _client(handler) -> Distillery:
    return Distillery(url="http://server", token="dst_x", transport=httpx.MockTransport(handler))


def test_errors_carry_the_field_path_and_jobs_are_followed():
    states = iter(["queued", "running", "failed"])

    def handler(request):
        assert request.headers["authorization"] == "Bearer dst_x" and "cookie" not in request.headers
        if request.url.path.endswith("/runs"):
            return httpx.Response(422, json={"detail": [{"loc": ["body", "config", "beta"], "msg": "must be > 0"}]})
        return httpx.Response(200, json={"id": 7, "kind": "trainingrun", "status": next(states), "done": 1, "total": 4,
                                         "stage": "", "error": "boom", "url": "/api/v1/projects/p/runs/7"})

    client = _client(handler)
    with pytest.raises(DistilleryError, match=r"HTTP 422: body\.config\.beta: must be > 0"):
        client.launch_run("p", method="dpo", snapshot=1, student=1, config={"beta": -1})
    seen = []
    with pytest.raises(JobFailed, match="trainingrun 7 failed: boom"):
        client.wait({"url": "/api/v1/projects/p/runs/7"}, progress=lambda job: seen.append(job["status"]), poll=0)
    assert seen == ["queued", "running", "failed"]


def test_a_missing_token_says_where_to_get_one(monkeypatch):
    monkeypatch.delenv("DISTILLERY_TOKEN", raising=False)
    with pytest.raises(DistilleryError, match="/account/tokens/"):
        Distillery(url="http://server")
