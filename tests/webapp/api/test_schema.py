"""The API's published face: the OpenAPI schema at its stable URL (bearer auth, the loop's
operations), the docs page under the site's CSP (its scripts are static files), and pagination."""
import re

import pytest

from webapp.catalog.models import PromptSet

pytestmark = pytest.mark.django_db


def test_openapi_schema_documents_the_loop_and_bearer_tokens(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Distillery API"
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
    paths = schema["paths"]
    for path, method in [("/api/v1/projects/{slug}/prompts/import", "post"), ("/api/v1/projects/{slug}/model-versions", "post"),
                         ("/api/v1/projects/{slug}/model-versions/endpoints", "post"),
                         ("/api/v1/projects/{slug}/generation-jobs", "post"), ("/api/v1/projects/{slug}/judge-jobs", "post"),
                         ("/api/v1/projects/{slug}/judgements/export", "get"), ("/api/v1/projects/{slug}/snapshots", "post"),
                         ("/api/v1/projects/{slug}/snapshots/{snapshot_id}/download/{fmt}", "get"),
                         ("/api/v1/projects/{slug}/runs", "post"), ("/api/v1/projects/{slug}/runs/{run_id}/metrics", "get"),
                         ("/api/v1/projects/{slug}/runs/{run_id}/rerun", "post"),
                         ("/api/v1/projects/{slug}/runs/{run_id}/checkpoints/{step}/register", "post"),
                         ("/api/v1/projects/{slug}/evaluations", "post")]:
        assert method in paths[path], path
    run_body = paths["/api/v1/projects/{slug}/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert run_body["$ref"].endswith("RunIn")


def test_docs_page_runs_under_the_csp(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "script-src 'self'" in page["Content-Security-Policy"]
    html = page.content.decode()
    inline = [tag for tag in re.findall(r"<script[^>]*>", html) if "src=" not in tag and "application/json" not in tag]
    assert not inline
    for src in re.findall(r'<script src="([^"]+)"', html):
        assert client.get(src).status_code == 200, src


def test_lists_are_paginated(project, researcher, api_as):
    for name in ("a", "b", "c"):
        PromptSet.objects.create(project=project, name=name)
    api = api_as(researcher, project)
    first = api.call("GET", f"/projects/{project.slug}/prompt-sets?page_size=2").json()
    assert (first["count"], first["page"], first["next"], len(first["items"])) == (3, 1, 2, 2)
    last = api.call("GET", f"/projects/{project.slug}/prompt-sets?page=2&page_size=2").json()
    assert (last["next"], len(last["items"])) == (None, 1)
    assert api.call("GET", f"/projects/{project.slug}/prompt-sets?page=x").status_code == 422
