"""Memberships are cached in the shared Redis cache on the hot path (webapp/projects/permissions.py);
a role change or a removal takes effect on the very next request, in this process and in another
(a real server process), through every write path (the services, the members page, a model save or
delete, and the bulk paths that skip model signals: queryset update/delete, bulk_update,
bulk_create), also when a request re-caches the old row while the change is still uncommitted; and
a project's new guidelines show at once."""
import json
import threading

import pytest
from django.db import transaction
from django.test import Client

from tests.webapp.annotation.conftest import http_login, pairwise, world  # noqa: F401  (fixtures)
from webapp.annotation.models import Judgement
from webapp.projects.models import Membership, Role
from webapp.projects.services import member_remove, member_set_role

pytestmark = pytest.mark.django_db


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _demote(path, project, user, admin_user):
    """Makes `user` an annotator of `project` through one write path."""
    role = Role.ANNOTATOR
    if path == "service":
        member_set_role(project=project, user=user, role=role)
    elif path == "members page":
        response = _logged_in(admin_user).post(f"/p/{project.slug}/members/", {"username": user.username, "role": role})
        assert response.status_code == 302
    elif path == "model save":  # the Django admin's change form and inline do this
        membership = Membership.objects.get(project=project, user=user)
        membership.role = role
        membership.save()
    elif path == "queryset update":
        assert Membership.objects.filter(project=project, user=user).update(role=role) == 1
    elif path == "related update":
        assert project.memberships.filter(role=Role.RESEARCHER).update(role=role) == 1
    elif path == "bulk_update":
        membership = Membership.objects.get(project=project, user=user)
        membership.role = role
        assert Membership.objects.bulk_update([membership], ["role"]) == 1
    elif path == "bulk_create upsert":
        Membership.objects.bulk_create([Membership(project=project, user=user, role=role)], update_conflicts=True,
                                       unique_fields=["project", "user"], update_fields=["role"])
    assert Membership.objects.get(project=project, user=user).role == role


DEMOTIONS = ["service", "members page", "model save", "queryset update", "related update", "bulk_update",
             "bulk_create upsert"]


@pytest.mark.parametrize("path", DEMOTIONS)
def test_a_demoted_researcher_loses_researcher_pages_at_the_next_request(path, project, researcher, admin_user):
    client = _logged_in(researcher)
    quality = f"/p/{project.slug}/quality/"
    assert client.get(quality).status_code == 200  # cached now
    _demote(path, project, researcher, admin_user)
    assert client.get(quality).status_code == 403


def _remove(path, project, user, admin_user, other_user):
    if path == "service":
        member_remove(project=project, user=user)
    elif path == "members page":
        response = _logged_in(admin_user).post(f"/p/{project.slug}/members/{user.id}/remove")
        assert response.status_code == 302
    elif path == "model delete":
        Membership.objects.get(project=project, user=user).delete()
    elif path == "queryset delete":
        Membership.objects.filter(project=project, user=user).delete()
    elif path == "queryset update to another user":  # the row moves away: the old key must go too
        Membership.objects.filter(project=project, user=user).update(user=other_user)
    assert not Membership.objects.filter(project=project, user=user).exists()


@pytest.mark.parametrize("path", ["service", "members page", "model delete", "queryset delete",
                                  "queryset update to another user"])
def test_a_removed_annotator_can_no_longer_submit(path, project, pairwise, annotator, admin_user, outsider):
    client = _logged_in(annotator)
    item = client.get(f"/p/{project.slug}/annotate/api/next").json()["comparison"]  # cached now
    _remove(path, project, annotator, admin_user, outsider)
    ranking = [[c["id"]] for c in item["candidates"]]
    response = client.post(f"/p/{project.slug}/annotate/api/submit", content_type="application/json",
                           data=json.dumps({"comparison": item["id"], "ranking": ranking}))
    assert response.status_code == 404 and not Judgement.objects.exists()


@pytest.mark.parametrize("path", ["service", "queryset update"])
def test_a_request_during_the_demotion_does_not_keep_the_old_role(path, transactional_db, project, researcher,
                                                                  admin_user):
    """Inside a transaction the cache entry is cleared before the commit; a request in that window
    reads the old (still committed) role from the database and caches it again. The entry is
    cleared once more after the commit."""
    client = _logged_in(researcher)
    quality = f"/p/{project.slug}/quality/"
    assert client.get(quality).status_code == 200
    during = {}

    def request_from_another_connection():
        from django.db import connection

        try:
            during["status"] = client.get(quality).status_code
        finally:
            connection.close()

    with transaction.atomic():
        _demote(path, project, researcher, admin_user)
        thread = threading.Thread(target=request_from_another_connection)
        thread.start()
        thread.join(30)
    assert during["status"] == 200  # it could not see the uncommitted change
    assert client.get(quality).status_code == 403


def test_role_changes_apply_at_the_next_request(client_for, project, researcher):
    client = client_for(researcher)
    quality = f"/p/{project.slug}/quality/"
    assert client.get(quality).status_code == 200  # cached now
    member_set_role(project=project, user=researcher, role=Role.ANNOTATOR)
    assert client.get(quality).status_code == 403
    member_remove(project=project, user=researcher)
    assert client.get(f"/p/{project.slug}/annotate/").status_code == 404
    member_set_role(project=project, user=researcher, role=Role.RESEARCHER)
    assert client.get(quality).status_code == 200


def test_project_edits_show_at_once(client_for, project, annotator):
    client = client_for(annotator)
    assert b"Prefer **correct** answers." in client.get(f"/p/{project.slug}/annotate/").content
    project.guidelines = "Prefer short answers."
    project.save()
    assert b"Prefer short answers." in client.get(f"/p/{project.slug}/annotate/").content


@pytest.mark.slow
def test_a_removal_reaches_another_server_process(transactional_db, asgi_server, project, annotator):
    client = http_login(asgi_server, annotator)
    assert client.get(f"/p/{project.slug}/annotate/api/next").status_code == 200
    member_remove(project=project, user=annotator)
    assert client.get(f"/p/{project.slug}/annotate/api/next").status_code == 404
