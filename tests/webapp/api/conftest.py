"""Tokens for the named personas, and a Django test client that sends one (and no session)."""
import pytest

from webapp.api.tokens import token_create


@pytest.fixture
def token_for():
    """`token_for(user, project=None, **options)` -> the raw token (read-write, scoped to the project)."""

    def make(user, project=None, **options):
        options.setdefault("can_write", True)
        scope = {"projects": [project]} if project is not None else {"all_projects": True}
        return token_create(user=user, name="test", **scope, **options)[1]

    return make


class TokenClient:
    """Calls the API with `Authorization: Bearer <token>`; JSON bodies; never logs in."""

    def __init__(self, client, token):
        self.client, self.token = client, token

    def call(self, method, path, body=None, **extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        kwargs = {"content_type": "application/json", "data": body} if body is not None else {}
        return getattr(self.client, method.lower())(f"/api/v1{path}", **kwargs, **headers, **extra)


@pytest.fixture
def api_as(client, token_for):
    """`api_as(user_or_token, project=None)` -> a TokenClient; a str is used as the token itself."""

    def make(who, project=None, **options):
        return TokenClient(client, who if isinstance(who, str) or who is None else token_for(who, project, **options))

    return make
