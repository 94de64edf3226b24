"""API operations that reuse a page's form and service, checked for the same answers as the page:
model versions (a path outside the model roots refused at `source`, a hub id registered), endpoints
(host allow-list at `endpoint_url`, the probe queued), and members (the admin's add and remove, the
last admin kept)."""
import pytest

from webapp.catalog.models import ModelVersion
from webapp.projects.models import Membership

pytestmark = pytest.mark.django_db


def test_model_versions_by_path_hub_id_and_endpoint(project, researcher, api_as, settings):
    api, base = api_as(researcher, project), f"/projects/{project.slug}/model-versions"
    refused = api.call("POST", base, {"name": "x", "role": "student", "source": "/etc"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "source"]
    hub = api.call("POST", base, {"name": "smol", "role": "student", "source": "HuggingFaceTB/SmolLM2-135M"})
    assert hub.status_code == 201 and hub.json()["source"] == "HuggingFaceTB/SmolLM2-135M"
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    elsewhere = api.call("POST", f"{base}/endpoints", {"name": "t", "endpoint_url": "http://10.0.0.1:8000/v1",
                                                       "served_model": "m"})
    assert elsewhere.status_code == 422 and elsewhere.json()["detail"][0]["loc"] == ["body", "endpoint_url"]
    made = api.call("POST", f"{base}/endpoints", {"name": "t", "endpoint_url": "http://127.0.0.1:8000/v1", "served_model": "m"})
    assert made.status_code == 202, made.content
    version = made.json()["model_version"]
    assert version["is_endpoint"] and version["probe"]["probed_at"] is None
    assert api.call("GET", made.json()["url"].removeprefix("/api/v1")).json()["served_model"] == "m"
    assert ModelVersion.objects.filter(project=project).count() == 2


def test_members_are_the_admins_to_change(project, admin_user, researcher, api_as):
    api = api_as(admin_user, project)
    added = api.call("POST", f"/projects/{project.slug}/members", {"username": "nia-new", "role": "annotator",
                                                                   "password": "a-long-Passphrase-2026"})
    assert added.status_code == 201 and added.json()["role"] == "annotator"
    assert api.call("POST", f"/projects/{project.slug}/members", {"username": "bad name!", "role": "annotator"}
                    ).json()["detail"][0]["loc"] == ["body", "username"]
    assert api.call("DELETE", f"/projects/{project.slug}/members/{added.json()['user_id']}").status_code == 204
    last_admin = api.call("DELETE", f"/projects/{project.slug}/members/{admin_user.pk}")
    assert last_admin.status_code == 422 and "admin" in last_admin.json()["detail"][0]["msg"]
    assert api_as(researcher, project).call("GET", f"/projects/{project.slug}/members").status_code == 403
    assert Membership.objects.filter(project=project).count() == 2
