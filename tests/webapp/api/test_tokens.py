"""Personal API tokens over the role x endpoint matrix: an annotator's token reaches only what the
annotation page does, a researcher's reaches the loop, an outsider's sees no project (404, as the
pages), revoked and expired tokens are 401 everywhere. Then scope (projects, read-only), hashing and
the shown-once page, last use, the per-token rate limit, and CSRF (tokens exempt, sessions not)."""
import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from webapp.api.models import ApiToken
from webapp.api.tokens import token_create
from webapp.projects.services import project_create

pytestmark = pytest.mark.django_db

# (method, path under /api/v1/projects/<slug>, body, the least role that reaches it)
ENDPOINTS = [
    ("GET", "", None, "annotator"),
    ("GET", "/annotation/next", None, "annotator"),
    ("POST", "/annotation/submit", {"comparison": 1, "ranking": [[1], [2]]}, "annotator"),
    ("GET", "/prompt-sets", None, "researcher"),
    ("GET", "/model-versions", None, "researcher"),
    ("POST", "/model-versions", {"name": "m", "role": "student", "source": "org/name"}, "researcher"),
    ("GET", "/generation-jobs", None, "researcher"),
    ("POST", "/generation-jobs", {"model_versions": [1], "prompt_set": 1}, "researcher"),
    ("GET", "/comparisons", None, "researcher"),
    ("GET", "/judge-jobs", None, "researcher"),
    ("GET", "/judgements", None, "researcher"),
    ("GET", "/judgements/export", None, "researcher"),
    ("GET", "/snapshots", None, "researcher"),
    ("POST", "/snapshots", {"name": "s1"}, "researcher"),
    ("GET", "/runs", None, "researcher"),
    ("POST", "/runs", {"method": "dpo", "snapshot": 1, "student": 1}, "researcher"),
    ("GET", "/evaluations", None, "researcher"),
    ("GET", "/leaderboard", None, "researcher"),
    ("GET", "/members", None, "admin"),
]
RANK = {"annotator": 1, "researcher": 2, "admin": 3}


@pytest.fixture
def personas(project, admin_user, researcher, annotator, outsider, token_for):
    revoked = token_for(researcher, project)
    ApiToken.objects.filter(user=researcher).update(revoked_at=timezone.now())
    expired = token_for(researcher, project)
    ApiToken.objects.filter(key_hash=hashlib.sha256(expired.encode()).hexdigest()).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    return {"admin": (token_for(admin_user, project), "admin"), "researcher": (token_for(researcher, project), "researcher"),
            "annotator": (token_for(annotator, project), "annotator"), "outsider": (token_for(outsider), None),
            "revoked": (revoked, "revoked"), "expired": (expired, "expired")}


def _expected(role, needed) -> set:
    if role in ("revoked", "expired"):
        return {401}
    if role is None:
        return {404}
    if RANK[role] < RANK[needed]:
        return {403}
    return {200, 201, 202, 404, 422}  # reached: the service answered (404/422: no such row, invalid on purpose)


def test_role_by_endpoint_matrix(project, personas, api_as):
    seen = {}
    for name, (token, role) in personas.items():
        client = api_as(token)
        for method, path, body, needed in ENDPOINTS:
            response = client.call(method, f"/projects/{project.slug}{path}", body)
            seen[(name, method, path)] = response.status_code
            assert response.status_code in _expected(role, needed), (name, method, path, response.content[:300])
            assert response.status_code < 500
            if response.status_code >= 400:
                detail = response.json()["detail"]
                assert isinstance(detail, list) and detail[0]["msg"] and "loc" in detail[0]
    # Reached means reached: a researcher's reads all succeed, an annotator's researcher reads all fail.
    assert all(seen[("researcher", "GET", p)] == 200 for m, p, _, n in ENDPOINTS if m == "GET" and n != "admin")
    assert seen[("annotator", "GET", "/runs")] == 403 and seen[("outsider", "GET", "")] == 404


def test_outsider_lists_no_projects_and_unknown_tokens_are_401(project, outsider, api_as):
    assert api_as(outsider).call("GET", "/projects").json()["count"] == 0
    for token in ("dst_" + "x" * 43, "nonsense", ""):
        response = Client().get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401 and response.json()["detail"][0]["loc"] == ["header", "Authorization"]
    assert Client().get("/api/v1/projects").status_code == 401


def test_scope_narrows_to_the_tokens_projects_and_read_only_to_get(project, researcher, api_as, django_user_model):
    other = project_create(name="Other", created_by=researcher)  # the researcher is its admin
    scoped = api_as(researcher, project)
    assert scoped.call("GET", f"/projects/{other.slug}").status_code == 404
    assert [p["slug"] for p in scoped.call("GET", "/projects").json()["items"]] == [project.slug]
    reader = api_as(researcher, project, can_write=False)
    assert reader.call("GET", f"/projects/{project.slug}/snapshots").status_code == 200
    response = reader.call("POST", f"/projects/{project.slug}/snapshots", {"name": "s"})
    assert response.status_code == 403 and response.json()["detail"][0]["type"] == "read_only"


def test_token_page_shows_it_once_stores_its_hash_and_revokes(client, project, researcher):
    client.force_login(researcher)
    response = client.post("/account/tokens/", {"name": "notebook", "projects": [project.pk], "days_valid": 30,
                                                "can_write": "on"})
    assert response.status_code == 200
    raw = response.context["created"]
    assert raw.startswith("dst_") and len(raw) >= 40 and raw in response.content.decode()
    token = ApiToken.objects.get(user=researcher)
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest() and raw not in str(token.__dict__)
    assert raw not in client.get("/account/tokens/").content.decode()  # shown once
    api = Client()
    assert api.get(f"/api/v1/projects/{project.slug}", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    client.post(f"/account/tokens/{token.pk}/revoke")
    assert api.get(f"/api/v1/projects/{project.slug}", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_a_token_cannot_be_scoped_to_a_project_its_user_is_not_in(project, outsider):
    with pytest.raises(Exception, match="member"):
        token_create(user=outsider, name="x", projects=[project])


def test_rate_limited_per_token(project, researcher, api_as, settings):
    settings.API_RATE_LIMIT = 3
    first, second = api_as(researcher, project), api_as(researcher, project)
    codes = [first.call("GET", "/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = first.call("GET", "/me")
    assert int(limited["Retry-After"]) > 0 and limited.json()["detail"][0]["type"] == "rate_limited"
    assert second.call("GET", "/me").status_code == 200  # another token has its own budget


def test_csrf_applies_to_sessions_not_tokens(project, researcher, token_for):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(researcher)
    path = f"/api/v1/projects/{project.slug}/snapshots"
    assert browser.get(path).status_code == 200  # a session reads
    refused = browser.post(path, {"name": "s"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"][0]["msg"]
    script = Client(enforce_csrf_checks=True)
    reached = script.post(path, {"name": "s"}, content_type="application/json",
                          HTTP_AUTHORIZATION=f"Bearer {token_for(researcher, project)}")
    assert reached.status_code == 422  # past auth, without a CSRF token: no settled comparisons to freeze
