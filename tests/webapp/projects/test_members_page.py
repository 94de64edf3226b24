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
