"""Named personas for web tests: an admin, a researcher, an annotator and an outsider (a logged-in
user who is no member), all around one project."""
import pytest

from webapp.projects.models import Role
from webapp.projects.services import member_set_role, project_create

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _services(embedded_services):
    """Every web test runs against the real PostgreSQL and Redis."""


def _user(django_user_model, username):
    return django_user_model.objects.create_user(username=username, password=PASSWORD)


@pytest.fixture
def admin_user(django_user_model):
    return _user(django_user_model, "ada-admin")


@pytest.fixture
def project(admin_user):
    return project_create(name="Arithmetic Tutor", created_by=admin_user, guidelines="Prefer **correct** answers.")


@pytest.fixture
def researcher(django_user_model, project):
    user = _user(django_user_model, "rhea-researcher")
    member_set_role(project=project, user=user, role=Role.RESEARCHER)
    return user


@pytest.fixture
def annotator(django_user_model, project):
    user = _user(django_user_model, "ann-annotator")
    member_set_role(project=project, user=user, role=Role.ANNOTATOR)
    return user


@pytest.fixture
def outsider(django_user_model):
    return _user(django_user_model, "otto-outsider")


@pytest.fixture
def client_for(client):
    """`client_for(user)` logs the test client in as that persona."""

    def login(user):
        client.force_login(user)
        return client

    return login


def browser_login(page, base: str, username: str, password: str = PASSWORD) -> None:
    """Signs `username` in through the real login form in the browser, and waits for the home page."""
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
