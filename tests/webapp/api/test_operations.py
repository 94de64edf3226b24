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


def test_snapshot_freeze_answers_201_small_and_202_with_the_job_above_the_threshold(project, researcher, api_as, monkeypatch,
                                                                                  django_capture_on_commit_callbacks):
    """Issue 23: as the page does, a large project's freeze is a SnapshotFreeze job on the default
    queue (202, its URL to poll, the snapshot linked once frozen); a small one freezes in the request."""
    from webapp.annotation import services, snapshot_jobs
    from webapp.annotation.models import PreferenceSnapshot, SnapshotFreeze
    from tests.webapp.annotation.conftest import make_world
    from webapp.annotation.services import comparisons_build
    from webapp.generation.models import Generation
    from workers.tasks.annotation import freeze_snapshot

    job = make_world(project, prompts=2)["job"]
    for comparison in comparisons_build(project=project, generations=Generation.objects.filter(job=job), mode="teacher_student")[:2]:
        a, b = [i.generation_id for i in comparison.items.order_by("position")]
        services.teacher_judgement_record(comparison_id=comparison.pk, judge_name="teacher:generative:t", judge_model=None,
                                          probability=0.8, outcome=1.0, ranking=[], details={}, shown_order=[[a, b], [b, a]])
    api, base = api_as(researcher, project), f"/projects/{project.slug}/snapshots"
    small = api.call("POST", base, {"name": "small", "source_filter": "teacher"})
    assert small.status_code == 201 and small.json()["pair_count"] == 2
    PreferenceSnapshot.objects.all().delete()
    monkeypatch.setattr(snapshot_jobs, "BACKGROUND_COMPARISONS", 0)
    sent = []
    monkeypatch.setattr("webapp.celery.app.send_task", lambda name, args=(), kwargs=None, **_: sent.append((name, tuple(args))))
    with django_capture_on_commit_callbacks(execute=True):
        large = api.call("POST", base, {"name": "large", "source_filter": "teacher"})
    assert large.status_code == 202, large.content
    job = SnapshotFreeze.objects.get()
    assert large.json()["url"] == f"/api/v1/projects/{project.slug}/snapshot-freezes/{job.pk}"
    assert large.json()["job"]["status"] == "queued" and large.json()["job"]["kind"] == "snapshotfreeze"
    assert sent == [("workers.tasks.annotation.freeze_snapshot", (job.pk,))] and not PreferenceSnapshot.objects.exists()
    assert freeze_snapshot(job.pk) == "succeeded"
    polled = api.call("GET", large.json()["url"].removeprefix("/api/v1")).json()
    assert polled["status"] == "succeeded" and polled["done"] == 2 and polled["name"] == "large"
    assert api.call("GET", polled["snapshot"].removeprefix("/api/v1")).json()["pair_count"] == 2
    again = api.call("POST", base, {"name": "large", "source_filter": "teacher"})
    assert again.status_code == 422
