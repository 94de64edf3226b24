"""Training runs with an endpoint teacher (issue 17), in this process on the real database: a
method the endpoint's capability cannot serve fails with the reason before anything loads or any
request is sent (a fault proxy with no server behind it); sequence-level KD trains on the real vLLM
endpoint's greedy answers; DCKD on the real vLLM endpoint (marker vllm) reads the teacher's top-K from the server into
the signal cache, trains the student with no π_dpo stage (the endpoint is the run's DPO teacher, in
its stage line, π_dpo and model card), and never loads the teacher's weights (the load ledger); ADPA
takes π_dpo and π_sft as two endpoint versions."""
import json
from pathlib import Path

import pytest

from tests.webapp.training.conftest import make_snapshot
from tests.ml.endpoints.fault_proxy import FaultProxy
from tests.workers.test_training_tasks import unconsumed_queue  # noqa: F401  (fixture)
from webapp.catalog.endpoints import endpoint_probe_store, endpoint_register
from webapp.catalog.services import model_version_register
from webapp.lifecycle import JobStatus
from webapp.projects.services import project_create
from webapp.training import services
from workers.tasks.gpu.training import train_run

pytestmark = pytest.mark.django_db(transaction=True)
SMALL = {"batch_size": 4, "grad_accum": 1, "max_length": 64, "learning_rate": 1e-4, "warmup_ratio": 0.0,
         "lr_scheduler": "constant", "max_steps": 3, "save_every_steps": 0}
CONFIGS = {"dckd": {**SMALL, "top_k": 20}, "kd": SMALL, "adpa": {**SMALL, "top_k": 20, "max_new_tokens": 8},
           "adpa_plus": {"dckd": {**SMALL, "top_k": 20}, "adpa": {**SMALL, "top_k": 20, "max_new_tokens": 8}}}
BLACK_BOX = {"kind": "black-box", "chat": True, "logprobs": False, "prompt_logprobs": 0}
WHITE_BOX = {"kind": "white-box", "chat": True, "logprobs": True, "top_logprobs_max": 50, "prompt_logprobs": 50}


def _world(user_model, settings, tmp_path, demo_dir, *, url, model, capability, api_key_env=""):
    settings.DATA_DIR, settings.ENDPOINT_HOSTS = tmp_path / "data", ["127.0.0.1"]
    user = user_model.objects.create_user(username="rhea-researcher", password="pw-123456789")
    project = project_create(name="Endpoint training", created_by=user)
    student = model_version_register(project=project, name="student", role="student", source=str(demo_dir / "student"))
    teacher = endpoint_register(project=project, name="api-teacher", role="teacher", endpoint_url=url, served_model=model,
                                api_key_env=api_key_env, concurrency=2)
    endpoint_probe_store(model_version_id=teacher.pk, capability=capability)
    teacher.refresh_from_db()
    return {"user": user, "project": project, "student": student, "teacher": teacher,
            "snapshot": make_snapshot(project, student, demo_dir, count=8)}


def _run(world, method, config, **teachers):
    return services.run_create(project=world["project"], created_by=world["user"], method=method, config=config,
                               snapshot=world["snapshot"], student=world["student"], **teachers)


@pytest.mark.parametrize("method, capability, teachers, reason", [
    ("dckd", BLACK_BOX, ("teacher_dpo",), "black-box endpoint gives no log-probabilities"),
    ("kd", WHITE_BOX, ("teacher",), "full logits in the training loop"),
    ("adpa_plus", WHITE_BOX, ("teacher_dpo", "teacher_sft"), "not run by the worker yet"),
])
def test_a_method_the_endpoint_cannot_serve_fails_with_the_reason(django_user_model, settings, tmp_path, tiny_demo_dir,
                                                                 unconsumed_queue, method, capability, teachers, reason):  # noqa: F811
    from webapp.embedded import free_port

    with FaultProxy(f"http://127.0.0.1:{free_port()}") as proxy:  # no server behind it: nothing may be asked
        world = _world(django_user_model, settings, tmp_path, tiny_demo_dir, url=proxy.base_url, model="demo-teacher",
                       capability=capability)
        run = _run(world, method, CONFIGS[method], **{name: world["teacher"] for name in teachers})
        assert train_run(run.id) == "failed"
        assert proxy.seen == []  # refused before asking the endpoint anything
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "EndpointRefused" in run.error and reason in run.error, run.error
    assert "api-teacher" in run.error


@pytest.mark.vllm
@pytest.mark.slow
def test_dckd_on_the_vllm_endpoint_trains_from_its_signals_without_loading_the_teacher(
        vllm_server, demo_world_dir, django_user_model, settings, tmp_path, monkeypatch, unconsumed_queue):  # noqa: F811
    ledger = tmp_path / "loads.jsonl"
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(ledger))
    world = _world(django_user_model, settings, tmp_path, demo_world_dir, url=vllm_server.base_url,
                   model=vllm_server.model, capability=WHITE_BOX, api_key_env=vllm_server.env_name)
    run = _run(world, "dckd", CONFIGS["dckd"], teacher_sft=world["teacher"])  # π_sft an endpoint: no π_dpo stage can train it
    assert train_run(run.id) == "succeeded"
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.step == 3, run.error
    assert run.teacher_dpo == world["teacher"]  # the endpoint is the run's DPO teacher, as it is
    assert "DPO teacher: the endpoint api-teacher" in run.log_tail and "teacher DPO of" not in run.log_tail
    signals = list((settings.DATA_DIR / "cache" / "signals" / "dckd").glob("*.safetensors"))
    assert len(signals) == 1
    loaded = [json.loads(line)["source"] for line in ledger.read_text().splitlines()]
    assert loaded and all(str(vllm_server.model_dir) not in source and "teacher" not in source for source in loaded)
    assert str(world["student"].source) in loaded
    card = (Path(run.checkpoints.get(is_final=True).path) / "README.md").read_text()
    assert "π_dpo: api-teacher (`endpoint:" in card, card


@pytest.mark.vllm
@pytest.mark.slow
def test_adpa_with_pi_dpo_and_pi_sft_as_two_endpoint_versions(vllm_server, demo_world_dir, django_user_model, settings,
                                                              tmp_path, monkeypatch, unconsumed_queue):  # noqa: F811
    ledger = tmp_path / "loads.jsonl"
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(ledger))
    world = _world(django_user_model, settings, tmp_path, demo_world_dir, url=vllm_server.base_url,
                   model=vllm_server.model, capability=WHITE_BOX, api_key_env=vllm_server.env_name)
    sft = endpoint_register(project=world["project"], name="api-teacher-sft", role="teacher", stage="sft",
                            endpoint_url=vllm_server.base_url, served_model=vllm_server.model,
                            api_key_env=vllm_server.env_name, concurrency=2)
    endpoint_probe_store(model_version_id=sft.pk, capability=WHITE_BOX)
    run = _run(world, "adpa", CONFIGS["adpa"], teacher_dpo=world["teacher"], teacher_sft=sft)
    assert train_run(run.id) == "succeeded", run.__class__.objects.get(pk=run.pk).error
    run.refresh_from_db()
    assert "advantages from the endpoints api-teacher (π_dpo) and api-teacher-sft (π_sft)" in run.log_tail
    assert len(list((settings.DATA_DIR / "cache" / "signals" / "adpa").glob("*.safetensors"))) == 1
    loaded = [json.loads(line)["source"] for line in ledger.read_text().splitlines()]
    assert loaded and set(loaded) == {str(world["student"].source)}  # the student generates and trains; no teacher


@pytest.mark.vllm
@pytest.mark.slow
def test_sequence_level_kd_trains_on_the_endpoints_answers(vllm_server, django_user_model, settings, tmp_path, tiny_demo_dir,
                                                           monkeypatch, unconsumed_queue):  # noqa: F811
    ledger = tmp_path / "loads.jsonl"
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(ledger))
    with FaultProxy(vllm_server.root_url) as proxy:  # forwards everything: it only counts what was asked
        world = _world(django_user_model, settings, tmp_path, tiny_demo_dir, url=proxy.base_url, model=vllm_server.model,
                       capability=WHITE_BOX, api_key_env=vllm_server.env_name)
        run = _run(world, "sft", {**SMALL, "target": "teacher", "max_new_tokens": 8}, teacher=world["teacher"])
        assert train_run(run.id) == "succeeded", run.__class__.objects.get(pk=run.pk).error
        chats = [body for path, body, _ in proxy.seen if path.endswith("/chat/completions")]
        assert len(chats) == 8 and all(body["temperature"] == 0 for body in chats)  # greedy, once each
    run.refresh_from_db()
    assert "sequence-level KD: api-teacher writes the 8 targets" in run.log_tail and run.config["target"] == "teacher"
    loaded = {json.loads(line)["source"] for line in ledger.read_text().splitlines()}
    assert loaded == {str(world["student"].source)}
