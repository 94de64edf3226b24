"""Catalog pages: upload → preview → commit (atomic, de-duplicated), errors shown and nothing
imported, model registration, prompt browsing, roles; and the import_prompts command."""
import json

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


def test_register_model_version(client_for, project, researcher, tiny_demo_dir):
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
    assert "not a model directory" in bad.content.decode()
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
