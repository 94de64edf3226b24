"""The vLLM test server itself (tests/vllm_server.py and the `vllm_server` fixture): what it is started
with, that it serves the demo teacher with the demo tokenizer and chat template exactly as ml.chat
tokenizes them (the ids an endpoint teacher's signals are scored on), that it refuses a wrong key, and
that a server which cannot start is reported with its log instead of a bare timeout."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.vllm_server import ENV_NAME, server_command, server_env


def test_server_command_serves_on_loopback_eagerly_with_top50_logprobs(tmp_path):
    command = server_command(tmp_path / "python", tmp_path / "model", name="teacher", api_key="k", port=8123)
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(command[3::1], command[4::1]))
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8123"
    assert flags["--served-model-name"] == "teacher" and flags["--api-key"] == "k"
    assert flags["--max-logprobs"] == "50" and flags["--dtype"] == "float32"
    assert "--enforce-eager" in command and flags["--distributed-executor-backend"] == "uni"


def test_server_env_is_offline_small_and_free_of_our_python_path():
    env = server_env({"PYTHONPATH": "/work/main", "VIRTUAL_ENV": "/work/main/.venv", "HOME": "/root"}, threads=2)
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["OMP_NUM_THREADS"] == "2"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


@pytest.mark.vllm
@pytest.mark.slow
def test_the_fixture_serves_the_demo_teacher_as_ml_chat_tokenizes_it(vllm_server, demo_world_dir):
    from ml.chat import prompt_ids, render_prompt
    from ml.modeling import load_tokenizer

    assert vllm_server.base_url.endswith("/v1") and vllm_server.env_name == ENV_NAME
    headers = {"Authorization": f"Bearer {vllm_server.api_key}"}
    with httpx.Client(timeout=60) as http:
        models = http.get(f"{vllm_server.base_url}/models", headers=headers).json()["data"]
        assert [m["id"] for m in models] == [vllm_server.model]
        assert models[0]["root"] == str(vllm_server.model_dir)
        assert http.get(f"{vllm_server.base_url}/models", headers={"Authorization": "Bearer wrong"}).status_code == 401

        tokenizer = load_tokenizer(str(vllm_server.model_dir))
        tasks = [json.loads(line) for line in (demo_world_dir / "prompts" / "eval.jsonl").read_text().splitlines()[:4]]
        for task in tasks:
            messages = [{"role": "user", "content": task["prompt"]}]
            by_template = http.post(f"{vllm_server.root_url}/tokenize", headers=headers, json={
                "model": vllm_server.model, "messages": messages, "add_generation_prompt": True}).json()["tokens"]
            by_text = http.post(f"{vllm_server.root_url}/tokenize", headers=headers, json={
                "model": vllm_server.model, "prompt": render_prompt(tokenizer, task["prompt"]),
                "add_special_tokens": False}).json()["tokens"]
            assert by_template == by_text == prompt_ids(tokenizer, task["prompt"])

        # greedy answers through the server's chat template are the in-worker greedy answers
        from ml.generation import generate
        from ml.modeling import load_model

        loaded = load_model(str(vllm_server.model_dir), device="cpu")
        local = generate(loaded.model, loaded.tokenizer, [t["prompt"] for t in tasks], temperature=0.0,
                         max_new_tokens=16)
        for task, samples in zip(tasks, local):
            body = http.post(f"{vllm_server.base_url}/chat/completions", headers=headers, json={
                "model": vllm_server.model, "messages": [{"role": "user", "content": task["prompt"]}],
                "max_tokens": 16, "temperature": 0, "logprobs": True, "top_logprobs": 5,
                "return_token_ids": True}).json()
            choice = body["choices"][0]
            assert choice["token_ids"] == samples[0].token_ids
            assert choice["message"]["content"].strip() == samples[0].text  # vLLM's detokenizer adds a leading space
            assert choice["finish_reason"] == samples[0].finish_reason == "stop"
            assert len(choice["logprobs"]["content"][0]["top_logprobs"]) == 5


@pytest.mark.vllm
@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    import subprocess

    from tests.vllm_server import REPO, start_server

    subprocess.run(["bash", str(REPO / "scripts" / "ensure-vllm.sh")], check=True)
    (tmp_path / "model").mkdir()  # no config.json: vLLM refuses it
    with pytest.raises(RuntimeError, match="exited with code") as error:
        start_server(tmp_path / "model", log_path=tmp_path / "server.log", timeout=300)
    assert str(tmp_path / "server.log") in str(error.value)
    assert "Traceback" in str(error.value) or "Error" in str(error.value)
