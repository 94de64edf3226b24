"""Catalog pages: upload → preview → commit (atomic, de-duplicated), errors shown and nothing
imported, model registration, prompt browsing, roles; and the import_prompts command."""
import html
import json
import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from webapp.catalog.models import ModelVersion, Prompt, PromptSet

pytestmark = pytest.mark.django_db


def upload(client, project, data: bytes, name="prompts.jsonl", prompt_set="imported"):
    return client.post(f"/p/{project.slug}/catalog/prompts/upload/",
                       {"file": SimpleUploadedFile(name, data), "prompt_set": prompt_set, "default_split": "train"})


def test_upload_preview_then_commit(client_for, project, researcher, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    client = client_for(researcher)
    rows = [{"prompt": f"task {i}"} for i in range(25)] + [{"prompt": "task 3"}]
    response = upload(client, project, "\n".join(json.dumps(r) for r in rows).encode())
    page = response.content.decode()
    assert response.status_code == 200 and 'id="import-preview"' in page
    assert response.context["new_count"] == 25 and response.context["duplicate_count"] == 1
    assert not Prompt.objects.exists()  # nothing until the commit
    response = client.post(f"/p/{project.slug}/catalog/prompts/upload/commit", {"token": response.context["token"]})
    assert response.status_code == 302
    assert Prompt.objects.filter(prompt_set__name="imported").count() == 25
    # The same preview cannot be committed twice, and re-uploading adds nothing new.
    again = upload(client, project, b'{"prompt": "task 1"}\n{"prompt": "task 99"}')
    assert again.context["new_count"] == 1 and again.context["duplicate_count"] == 1


def test_malformed_upload_shows_errors_and_imports_nothing(client_for, project, researcher, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    response = upload(client_for(researcher), project, b'{"prompt": "ok"}\n{"prompt": 3}\n\xff\n')
    page = response.content.decode()
    assert response.status_code == 422 and "nothing was imported" in page
    assert "line 2: &#x27;prompt&#x27; must be a string" in page and "line 3: not valid UTF-8" in page
    assert not Prompt.objects.exists() and not PromptSet.objects.exists()


@pytest.mark.parametrize("extra,why", [
    (b'{"score": 1e309}', "the number 1e309 is out of range"),  # parsed as inf; jsonb refused it at commit
    (b'{"score": [1, NaN]}', "NaN is not a JSON number"),
    (b'{"score": Infinity}', "Infinity is not a JSON number"),
    (b'{"tree": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper than 32 levels"),  # was RecursionError, a 500
    (b'{"tree": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32 levels"),
])
def test_metadata_jsonb_cannot_store_is_refused_at_preview(client_for, project, researcher, settings, tmp_path, extra, why):
    settings.DATA_DIR = tmp_path
    line = b'{"prompt": "b", "meta": ' + extra + b"}"
    response = upload(client_for(researcher), project, b'{"prompt": "a"}\n' + line)
    page = html.unescape(response.content.decode())
    assert response.status_code == 422 and f"line 2: not stored: {why}" in page
    assert not Prompt.objects.exists() and not PromptSet.objects.exists()


def test_commit_is_all_or_nothing(client_for, project, researcher, settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path
    client = client_for(researcher)
    response = upload(client, project, b'{"prompt": "a"}\n{"prompt": "b"}')
    from webapp.catalog import services

    def broken(*, prompt_set, rows):
        Prompt.objects.create(prompt_set=prompt_set, text="half", content_hash="x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "prompts_bulk_create", broken)
    with pytest.raises(RuntimeError):
        client.post(f"/p/{project.slug}/catalog/prompts/upload/commit", {"token": response.context["token"]})
    assert not Prompt.objects.exists() and not PromptSet.objects.exists()


def test_register_model_version(client_for, project, researcher, tiny_demo_dir, settings):
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tiny_demo_dir]
    client = client_for(researcher)
    response = client.post(f"/p/{project.slug}/catalog/", {"name": "tiny-teacher", "role": "teacher", "stage": "sft",
                                                          "source": str(tiny_demo_dir / "teacher"), "revision": ""})
    assert response.status_code == 302
    version = ModelVersion.objects.get(name="tiny-teacher")
    assert version.parameter_count and version.parameter_count > 1000 and version.stage == "sft"
    hub = client.post(f"/p/{project.slug}/catalog/", {"name": "hub", "role": "student", "stage": "base",
                                                     "source": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "main"})
    assert hub.status_code == 302 and ModelVersion.objects.get(name="hub").revision == "main"
    bad = client.post(f"/p/{project.slug}/catalog/", {"name": "bad", "role": "student", "stage": "base", "source": "/nowhere"})
    assert "outside the model directories" in bad.content.decode()
    empty = client.post(f"/p/{project.slug}/catalog/", {"name": "bad", "role": "student", "stage": "base",
                                                       "source": str(tiny_demo_dir / "prompts")})
    assert "not a model directory" in empty.content.decode()
    dup = client.post(f"/p/{project.slug}/catalog/", {"name": "hub", "role": "student", "stage": "base", "source": "a/b"})
    assert "already exists" in dup.content.decode()


@pytest.mark.parametrize("persona,status", [("researcher", 200), ("annotator", 403), ("outsider", 404)])
def test_catalog_roles(request, client_for, project, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(f"/p/{project.slug}/catalog/").status_code == status


def test_prompt_set_browse_escapes_and_filters(client_for, project, researcher):
    prompt_set = PromptSet.objects.create(project=project, name="s")
    Prompt.objects.create(prompt_set=prompt_set, text="<script>alert(1)</script> add", split="eval", tags=["add"], content_hash="a")
    Prompt.objects.create(prompt_set=prompt_set, text="other", content_hash="b")
    page = client_for(researcher).get(f"/p/{project.slug}/catalog/prompts/{prompt_set.pk}/?split=eval&tag=add").content.decode()
    assert "&lt;script&gt;" in page and "<script>alert" not in page and "other" not in page


def test_import_command(project, tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text('{"prompt": "a"}\n{"prompt": "b", "split": "eval"}\n')
    call_command("import_prompts", str(good), project=project.slug, prompt_set="cli")
    assert Prompt.objects.filter(prompt_set__name="cli").count() == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "c"}\n{"text": 5}\n')
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_prompts", str(bad), project=project.slug, prompt_set="cli")
    assert Prompt.objects.filter(prompt_set__name="cli").count() == 2


def _model_dir(path, header=None, *, raw: bytes | None = None):
    """A minimal local model directory: config.json and one safetensors file (2×3 float32), or the
    given raw bytes as that file."""
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if raw is None:
        header = json.dumps(header or {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
        raw = struct.pack("<Q", len(header)) + header + bytes(24)
    (path / "model.safetensors").write_bytes(raw)
    return path


def _register(client, project, source, name="m"):
    return client.post(f"/p/{project.slug}/catalog/", {"name": name, "role": "student", "stage": "base", "source": source})


def test_model_sources_limited_to_roots_and_own_runs(client_for, project, researcher, admin_user, settings, tmp_path):
    from webapp.projects.services import project_create
    from webapp.training.models import TrainingRun

    data = settings.DATA_DIR = tmp_path / "data"
    settings.MODEL_ROOTS = [data]
    rival = project_create(name="Rival Lab", created_by=admin_user)
    runs = {}
    for owner in (project, rival):
        base = ModelVersion.objects.create(project=owner, name="base", role="student", source="org/base")
        runs[owner.slug] = TrainingRun.objects.create(project=owner, name="r", method="sft", student=base)
    own = _model_dir(data / "runs" / str(runs[project.slug].id) / "final")
    theirs = _model_dir(data / "runs" / str(runs[rival.slug].id) / "final")
    placed = _model_dir(data / "models" / "placed")
    outside = _model_dir(tmp_path / "elsewhere" / "model")
    cached = _model_dir(data / "cache" / "teacher-dpo" / "abc" / "final")
    (data / "models" / "sneaky").symlink_to(theirs)
    client = client_for(researcher)

    refused = {str(theirs): "not an output of one of this project's training runs",
               str(outside): "outside the model directories", str(cached): "internal server data",
               str(data / "models" / "sneaky"): "not an output of one of this project's training runs",
               "./models/../../elsewhere/model": "outside the model directories"}
    for source, why in refused.items():
        response = _register(client, project, source)
        assert response.status_code == 200 and why in html.unescape(response.content.decode()), source
    assert not ModelVersion.objects.filter(name="m").exists()

    assert _register(client, project, str(own), "own").status_code == 302
    assert _register(client, project, "./models/placed", "relative").status_code == 302  # against the data dir
    assert ModelVersion.objects.get(name="relative").source == str(placed.resolve())
    assert ModelVersion.objects.get(name="own").parameter_count == 6
    assert _register(client, project, "org/any-hub-model", "hub").status_code == 302  # hub ids stay allowed


def _header(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize("raw,why", [
    (struct.pack("<Q", 2**63) + b"{}", "exceeds the file"),       # was OverflowError → 500
    (struct.pack("<Q", 10**6) + b"{}", "exceeds the file"),
    (b"\x01\x02", "shorter than its 8-byte header"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (struct.pack("<Q", 27) + b'{"w": {"shape": ["2", 3]}} ', "has no valid shape"),
    (struct.pack("<Q", 14) + b'{"w": [1, 2]} ', "has no valid shape"),
    # issue 22: a deep header was a RecursionError (a 500 after 20 s); shapes past any real file overflowed
    (_header(b'{"w": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"), "nested deeper than 4 levels"),
    (_header(b'{"w": {"shape": [4294967296, 4294967296, 4294967296], "dtype": "F32"}}'), "more than any file holds"),
    (_header(b'{"w": {"shape": [1e309]}}'), "out of range"),
])
def test_malformed_safetensors_header_is_a_form_error(client_for, project, researcher, settings, tmp_path, raw, why):
    settings.DATA_DIR = tmp_path
    settings.MODEL_ROOTS = [tmp_path]
    settings.DEBUG = True  # the 500 page would have dumped the settings
    _model_dir(tmp_path / "broken", raw=raw)
    response = _register(client_for(researcher), project, str(tmp_path / "broken"))
    assert response.status_code == 200
    assert why in response.content.decode() and "not a valid safetensors file" in response.content.decode() \
        or "not a safetensors file" in response.content.decode()
    assert not ModelVersion.objects.filter(name="m").exists()
