"""The members page (admins only) keeps the whole project nav, and both ways of adding someone
(the add form and an invite link) start at the least-privileged role, annotator."""
import re

import pytest

pytestmark = pytest.mark.django_db


def test_members_page_keeps_the_project_nav(client_for, project, admin_user):
    html = client_for(admin_user).get(f"/p/{project.slug}/members/").content.decode()
    nav = html.split('<nav class="topnav"', 1)[1].split("</nav>", 1)[0]
    for page in ("Catalog", "Generation", "Snapshots", "Training", "Evaluations", "Members"):
        assert f">{page}</a>" in nav


def test_new_member_and_invite_default_to_annotator(client_for, project, admin_user):
    html = client_for(admin_user).get(f"/p/{project.slug}/members/").content.decode()
    selects = re.findall(r'<select name="role"[^>]*>(.*?)</select>', html, re.S)
    assert len(selects) == 2
    for options in selects:
        assert re.findall(r'<option value="(\w+)" selected>', options) == ["annotator"]


@pytest.mark.parametrize("username", ["<script>x</script>", "two words", "a/b", "x" * 151, "tab\tname", "é" * 10 + "?"])
def test_usernames_are_validated_before_a_user_is_made(client_for, project, admin_user, django_user_model, username):
    """Issue 22: the add form made users sign-up would refuse (spaces, markup, slashes)."""
    before = django_user_model.objects.count()
    response = client_for(admin_user).post(f"/p/{project.slug}/members/", {
        "username": username, "password": "a-long-enough-passphrase-42", "role": "annotator"})
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert django_user_model.objects.count() == before
