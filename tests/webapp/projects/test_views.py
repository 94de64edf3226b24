"""Role checks on the project pages, for each persona."""
import pytest

pytestmark = pytest.mark.django_db


def test_login_page_and_redirect_for_anonymous(client, project):
    assert client.get("/login/").status_code == 200
    response = client.get(f"/p/{project.slug}/")
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.parametrize("persona,status", [("admin_user", 200), ("researcher", 200), ("annotator", 200), ("outsider", 404)])
def test_project_home_by_role(request, client_for, project, persona, status):
    client = client_for(request.getfixturevalue(persona))
    response = client.get(f"/p/{project.slug}/")
    assert response.status_code == status
    if status == 200:
        assert b"comparisons pending" in response.content


@pytest.mark.parametrize("persona,status", [("admin_user", 200), ("researcher", 403), ("annotator", 403), ("outsider", 404)])
def test_members_page_is_admin_only(request, client_for, project, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(f"/p/{project.slug}/members/").status_code == status


def test_project_list_shows_only_member_projects(client_for, project, annotator, outsider):
    assert project.name.encode() in client_for(annotator).get("/").content
    assert project.name.encode() not in client_for(outsider).get("/").content


def test_admin_adds_member_and_invite_link_signup(client, client_for, project, admin_user, django_user_model):
    admin = client_for(admin_user)
    response = admin.post(f"/p/{project.slug}/members/", {"username": "newbie", "password": "pw-123456789", "role": "annotator"})
    assert response.status_code == 302
    assert django_user_model.objects.get(username="newbie").memberships.get().role == "annotator"

    admin.post(f"/p/{project.slug}/invites/", {"role": "researcher", "days_valid": 7})
    invite = project.invites.get()
    client.logout()
    response = client.post(f"/invite/{invite.token}", {"username": "invitee", "password1": "Sup3r-secret-pw", "password2": "Sup3r-secret-pw"})
    assert response.status_code == 302
    assert django_user_model.objects.get(username="invitee").memberships.get(project=project).role == "researcher"
    # A used link cannot be used again.
    client.logout()
    client.post(f"/invite/{invite.token}", {"username": "second", "password1": "Sup3r-secret-pw", "password2": "Sup3r-secret-pw"})
    assert not project.memberships.filter(user__username="second").exists()


def test_last_admin_cannot_be_removed(client_for, project, admin_user):
    client_for(admin_user).post(f"/p/{project.slug}/members/{admin_user.id}/remove")
    assert project.memberships.filter(user=admin_user, role="admin").exists()


@pytest.mark.parametrize("spoil", ["used", "expired"])
def test_used_or_expired_invite_creates_no_account(client, project, admin_user, django_user_model, spoil):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.projects.services import invite_create

    invite = invite_create(project=project, role="annotator", created_by=admin_user)
    if spoil == "used":
        invite.used_at, invite.used_by = timezone.now(), admin_user
    else:
        invite.expires_at = timezone.now() - timedelta(minutes=1)
    invite.save()
    response = client.post(f"/invite/{invite.token}", {"username": "mallory", "password1": "Sup3r-secret-pw",
                                                       "password2": "Sup3r-secret-pw"})
    assert response.status_code == 200
    assert b"already been used" in response.content or b"has expired" in response.content
    assert not django_user_model.objects.filter(username="mallory").exists()
    assert "_auth_user_id" not in client.session  # nobody got logged in
    assert client.get(f"/p/{project.slug}/").status_code == 302


@pytest.mark.parametrize("username,password,complaint", [
    ("newbie", "abcde", b"too short"), ("newbie", "password123", b"too common"),
    ("newbie", "8675309912", b"entirely numeric"), ("newbie-newbie", "newbie-newbie", b"too similar")])
def test_members_page_runs_password_validators(client_for, project, admin_user, django_user_model, username, password,
                                               complaint):
    response = client_for(admin_user).post(f"/p/{project.slug}/members/",
                                           {"username": username, "password": password, "role": "annotator"})
    assert response.status_code == 200 and complaint in response.content
    assert not django_user_model.objects.filter(username=username).exists()
