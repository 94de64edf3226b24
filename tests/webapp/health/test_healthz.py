"""/healthz reports each part, and is 200 only when every queue has a live worker."""
import pytest

from webapp.health import heartbeats

pytestmark = pytest.mark.django_db


@pytest.fixture
def clean_heartbeats():
    client = heartbeats._client()
    for key in client.scan_iter(match="distillery:heartbeat:*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(match="distillery:heartbeat:*"):
        client.delete(key)


def test_healthz_503_when_workers_missing(client, clean_heartbeats):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["database"]["ok"] and body["redis"]["ok"] and body["channel_layer"]["ok"]
    assert body["workers"]["gpu"] == {"ok": False, "count": 0}


def test_healthz_200_with_every_queue_beating(client, clean_heartbeats, django_user_model):
    for queue in heartbeats.QUEUES:
        heartbeats.beat(queue=queue, hostname=f"{queue}@test")
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["workers"]["gpu"] == {"ok": True, "count": 1}
    assert "gpu@test" not in response.content.decode()  # issue 22: no host names for anonymous callers
    client.force_login(django_user_model.objects.create_user(username="sam-staff", is_staff=True))
    assert client.get("/healthz").json()["workers"]["gpu"]["hosts"] == ["gpu@test"]


def test_header_badge_shows_down_queues(client_for, project, annotator, clean_heartbeats):
    heartbeats.beat(queue="default", hostname="default@test")
    page = client_for(annotator).get(f"/p/{project.slug}/").content.decode()
    assert 'id="worker-badge"' in page and "gpu" in page
    for queue in heartbeats.QUEUES:
        heartbeats.beat(queue=queue, hostname=f"{queue}@test")
    assert 'id="worker-badge"' not in client_for(annotator).get(f"/p/{project.slug}/").content.decode()
