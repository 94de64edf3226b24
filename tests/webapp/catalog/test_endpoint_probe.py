"""The probe task (workers.tasks.catalog.probe_endpoint) end to end on the web side: against the real
vLLM test server (marker `vllm`: white-box capability, a wrong key named by its variable), a closed
port, an unset key variable and a host taken off the list. And the key's secrecy: no page the
researcher can open, no log the tests collect and no row of any table holds it, with the real
server and with a hostile one that echoes the key back (tests/webapp/catalog/fake_openai.py, an
in-process MockTransport: fault injection a real server does not do)."""
import functools
import logging
from pathlib import Path

import pytest
from django.db import connection

from tests.webapp.catalog import fake_openai
from tests.webapp.catalog.test_endpoints import VALID
from webapp.catalog.endpoints import endpoint_register
from webapp.catalog.models import ModelVersion
from webapp.celery import app
from workers.tasks import catalog as catalog_tasks

pytestmark = pytest.mark.django_db
KEY_ENV = "DISTILLERY_ENDPOINT_KEY_TEST"
SECRET = "sk-distillery-test-7f3a9c1e5b2d4068"


def fake_vllm(key: str, **options):
    return fake_openai.transport(key, **options)


@pytest.fixture
def endpoint(project, settings, monkeypatch):
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(app, "send_task", lambda *a, **k: None)
    return endpoint_register(project=project, **VALID)


def _with_transport(monkeypatch, transport):
    monkeypatch.setattr(catalog_tasks, "EndpointClient", functools.partial(catalog_tasks.EndpointClient,
                                                                           transport=transport))


def test_an_unset_key_variable_says_where_to_set_it(endpoint, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    catalog_tasks.probe_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert f"${KEY_ENV} is not set" in endpoint.probe_error


def test_an_unreachable_server_gives_the_reason(project, settings, monkeypatch):
    from webapp.embedded import free_port

    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(app, "send_task", lambda *a, **k: None)
    monkeypatch.setattr(catalog_tasks, "PROBE_RETRIES", 0)
    version = endpoint_register(project=project, **{**VALID, "api_key_env": "",
                                                    "endpoint_url": f"http://127.0.0.1:{free_port()}/v1"})
    catalog_tasks.probe_endpoint(version.pk)
    version.refresh_from_db()
    assert version.probe_state == "failed" and "connection failed" in version.probe_error


def test_a_host_removed_from_the_list_is_not_contacted(endpoint, settings, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    settings.ENDPOINT_HOSTS = ["api.example.com"]
    catalog_tasks.probe_endpoint(endpoint.pk)
    endpoint.refresh_from_db()  # refused before any request: a contact would have failed with "connection failed"
    assert endpoint.probe_state == "failed" and "is not in DISTILLERY_ENDPOINT_HOSTS" in endpoint.probe_error


# The key's secrecy: pages, logs, every table.

def _pages(client, project, version) -> dict[str, str]:
    urls = [f"/p/{project.slug}/{u}" for u in ("catalog/", f"catalog/models/{version.pk}/", "generation/", "judge/",
                                               "training/new/?method=dckd", "training/new/?method=sft", "evaluations/",
                                               "loop/", "")]
    pages = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.content.decode()
    return pages


def _database_dump() -> str:
    """Every row of every table in the test database, as text."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        chunks = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.append(f"{table}: {cursor.fetchall()!r}")
    assert len(tables) > 20  # the dump really covers the schema
    return "\n".join(chunks)


def _collected_logs(tmp_path_factory) -> str:
    """Every file under this session's temp root (the ASGI server's and Celery workers' logs when
    those fixtures ran), as text."""
    root = Path(tmp_path_factory.getbasetemp())
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*.log") if p.is_file())


def _assert_secret_nowhere(secret, client, project, version, caplog, tmp_path_factory):
    for url, page in _pages(client, project, version).items():
        assert secret not in page, url
    assert secret not in caplog.text
    assert secret not in _collected_logs(tmp_path_factory)
    dump = _database_dump()
    assert KEY_ENV in dump and secret not in dump  # the name is stored, the value is not


def test_the_key_value_is_in_no_page_log_or_table(client_for, project, researcher, endpoint, monkeypatch, caplog,
                                                  tmp_path_factory):
    """A hostile server that echoes the request's Authorization header in an error (fault injection
    no real vLLM does): the key it sends back is masked before anything stores or logs it."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, SECRET)
    transport, _ = fake_vllm(SECRET, echo_key_on_tokenize=True)  # the server even echoes it once
    _with_transport(monkeypatch, transport)
    catalog_tasks.probe_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.probe_state == "ok" and "tokenize" in endpoint.capability["notes"]
    _assert_secret_nowhere(SECRET, client_for(researcher), project, endpoint, caplog, tmp_path_factory)


@pytest.mark.vllm
@pytest.mark.slow
def test_probe_against_a_real_vllm_server_keeps_the_key_secret(request, client_for, project, researcher, settings,
                                                                monkeypatch, caplog, tmp_path_factory):
    try:
        server = request.getfixturevalue("vllm_server")
    except pytest.FixtureLookupError:
        pytest.skip("no vllm_server fixture in this tree (tests/conftest.py)")
    caplog.set_level(logging.DEBUG)
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(app, "send_task", lambda *a, **k: None)
    monkeypatch.setenv(server.env_name, server.api_key)
    version = endpoint_register(project=project, name="served", role="teacher", endpoint_url=server.base_url,
                                served_model=server.model, api_key_env=server.env_name)
    assert catalog_tasks.probe_endpoint(version.pk) == "white-box"
    version.refresh_from_db()
    assert version.probe_state == "ok" and version.probed_at is not None and version.probe_error == ""
    assert version.capability["model"]["id"] == server.model and version.capability["model"]["root"] == str(server.model_dir)
    assert version.capability["prompt_logprobs"] == 50  # the test server runs with --max-logprobs 50
    page = client_for(researcher).get(f"/p/{project.slug}/catalog/models/{version.pk}/").content.decode()
    assert "<strong>white-box</strong>" in page and server.model in page
    _assert_secret_nowhere(server.api_key, client_for(researcher), project, version, caplog, tmp_path_factory)
    monkeypatch.setenv(server.env_name, "sk-wrong-value-0000")
    assert catalog_tasks.probe_endpoint(version.pk) == "failed"
    version.refresh_from_db()
    assert f"refused the API key from ${server.env_name}" in version.probe_error
    assert "sk-wrong-value-0000" not in version.probe_error and version.probe_state == "failed"
