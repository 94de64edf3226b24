"""Memberships are cached in the shared Redis cache on the hot path (webapp/projects/permissions.py);
a role change or a removal takes effect on the very next request, in this process and in another
(a real server process), and a project's new guidelines show at once."""
import pytest

from tests.webapp.annotation.conftest import http_login
from webapp.projects.models import Role
from webapp.projects.services import member_remove, member_set_role

pytestmark = pytest.mark.django_db


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
