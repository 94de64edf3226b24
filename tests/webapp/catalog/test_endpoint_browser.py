"""Registering an endpoint in Chromium, probed by the real default-queue worker (its key only in the
workers' environment: DISTILLERY_ENDPOINT_KEY_E2E of service_env) against an OpenAI-compatible fake
over real HTTP; the model page follows the probe to its capability. Then the key's value is looked for
in every page the researcher opens, the web server's and workers' logs, and every database table."""
import pytest

from tests.webapp.catalog.fake_openai import FakeServer
from tests.webapp.catalog.test_endpoint_probe import _collected_logs, _database_dump
from tests.webapp.conftest import browser_login
from webapp.catalog.models import ModelVersion

KEY_ENV = "DISTILLERY_ENDPOINT_KEY_E2E"


@pytest.mark.browser
@pytest.mark.slow
def test_register_an_endpoint_in_the_browser_and_the_key_stays_secret(transactional_db, asgi_server, celery_workers,
                                                                      service_env, page, project, researcher,
                                                                      artifacts_dir, tmp_path_factory):
    secret = service_env[KEY_ENV]
    with FakeServer(secret) as server:
        browser_login(page, asgi_server, researcher.username)
        page.goto(f"{asgi_server}/p/{project.slug}/catalog/")
        page.click("#endpoint-register summary")
        form = "#endpoint-form"
        page.fill(f"{form} input[name=name]", "served-teacher")
        page.select_option(f"{form} select[name=role]", "teacher")
        page.fill(f"{form} input[name=endpoint_url]", server.base_url)
        page.fill(f"{form} input[name=served_model]", "demo-teacher")
        page.fill(f"{form} input[name=api_key_env]", KEY_ENV)
        page.click(f"{form} button.primary")
        page.wait_for_selector("#probe-state")
        page.wait_for_selector("#probe-state[data-state=ok]", timeout=60_000)  # the page reloads while pending
        page.screenshot(path=str(artifacts_dir / "endpoint-model-page.png"), full_page=True)
        assert "white-box" in page.inner_text("#capability") and "/models/teacher" in page.inner_text("#identity")
        assert KEY_ENV in page.inner_text("#api-key-env")
        assert "/v1/models" in server.paths
    version = ModelVersion.objects.get(name="served-teacher")
    assert version.capability["kind"] == "white-box" and version.api_key_env == KEY_ENV
    texts = []
    for url in ("catalog/", f"catalog/models/{version.pk}/", "generation/", "judge/", "training/new/?method=dckd",
                "evaluations/", "loop/"):
        page.goto(f"{asgi_server}/p/{project.slug}/{url}")
        texts.append(page.content())
    assert "served-teacher" in texts[2] and "endpoint, white-box" in texts[2]  # the generation picker marks it
    assert not [t for t in texts if secret in t]
    assert secret not in _collected_logs(tmp_path_factory)
    dump = _database_dump()
    assert KEY_ENV in dump and secret not in dump
