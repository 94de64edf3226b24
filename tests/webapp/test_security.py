"""Production safety, each against the real thing: settings refuse a wildcard host with DEBUG off (a
fresh interpreter loads them), the real ASGI server refuses sockets from another origin (the check
must hold with the local default ALLOWED_HOSTS=*), and bootstrap_demo never leaves the well-known
admin/distillery account outside the embedded default."""
import asyncio
import os
import re
import subprocess
import sys

import pytest
import websockets
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from tests.conftest import REPO
from tests.webapp.annotation.conftest import http_login

LOAD_SETTINGS = "import django; django.setup(); from django.conf import settings; print(settings.ALLOWED_HOSTS)"


def _load_settings(**env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-c", LOAD_SETTINGS], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**base, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DJANGO_DEBUG": "0",
                               "DJANGO_SECRET_KEY": "k" * 50, **env})


@pytest.mark.parametrize("hosts", ["*", "distillery.example.org,*", None])
def test_wildcard_or_missing_hosts_refused_without_debug(hosts):
    result = _load_settings(**({"DJANGO_ALLOWED_HOSTS": hosts} if hosts is not None else {}))
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must name this server's host names" in result.stderr


def test_named_hosts_load_without_debug():
    result = _load_settings(DJANGO_ALLOWED_HOSTS="distillery.example.org")
    assert result.returncode == 0, result.stderr
    assert "distillery.example.org" in result.stdout


async def _open(server, path, cookie, origin):
    url = server.replace("http://", "ws://") + path
    headers = {"Cookie": f"sessionid={cookie}"}
    if origin:
        headers["Origin"] = origin
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
        return await asyncio.wait_for(ws.recv(), 10)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example", "null", None,
                                    "http://127.0.0.1.evil.example"])
def test_cross_origin_socket_is_refused(asgi_server, project, annotator, origin):
    http = http_login(asgi_server, annotator)
    path = f"/ws/p/{project.slug}/annotation/"
    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(_open(asgi_server, path, http.cookies["sessionid"], origin))
    assert refused.value.response.status_code == 403
    assert asyncio.run(_open(asgi_server, path, http.cookies["sessionid"], asgi_server))  # same origin: accepted


@pytest.mark.django_db
def test_bootstrap_demo_outside_embedded_prints_a_random_password_once(settings, tiny_demo_dir, capsys):
    settings.EMBEDDED_SERVICES = False
    call_command("bootstrap_demo", demo_dir=str(tiny_demo_dir))
    out = capsys.readouterr().out
    password = re.search(r"login admin / (\S+)\)", out).group(1)
    assert password != "distillery" and len(password) >= 16
    assert authenticate(username="admin", password=password) is not None
    assert authenticate(username="admin", password="distillery") is None

    call_command("bootstrap_demo", demo_dir=str(tiny_demo_dir))  # idempotent, and the password is not shown again
    again = capsys.readouterr().out
    assert password not in again and "password unchanged" in again


@pytest.mark.django_db
def test_bootstrap_demo_embedded_default_and_weak_password(settings, tiny_demo_dir, capsys):
    settings.EMBEDDED_SERVICES = True
    call_command("bootstrap_demo", demo_dir=str(tiny_demo_dir))
    assert "login admin / distillery" in capsys.readouterr().out
    with pytest.raises(CommandError, match="too short"):
        call_command("bootstrap_demo", demo_dir=str(tiny_demo_dir), username="boss", password="abc")


# --- issue 22: no debug pages, a Content-Security-Policy, /healthz names no hosts ---------------------

TEMPLATES = REPO / "templates"


@pytest.mark.django_db
def test_pages_carry_a_csp_whose_nonce_their_inline_scripts_use(client_for, project, researcher):
    response = client_for(researcher).get(f"/p/{project.slug}/training/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", response.content.decode())
    assert inline and all(f'nonce="{nonce}"' in attrs or "application/json" in attrs for attrs in inline)
    again = client_for(researcher).get(f"/p/{project.slug}/training/").headers["Content-Security-Policy"]
    assert again != policy  # a fresh nonce per response


def test_templates_use_no_inline_event_handlers_or_unnonced_scripts():
    """The policy runs neither; site.js binds data-confirm / data-autosubmit instead."""
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"\son[a-z]+=[\"']", text), f"{path}: inline event handler"
        assert not re.search(r"<script(?![^>]*\b(src|nonce|type)=)[^>]*>", text), f"{path}: inline script without the nonce"


@pytest.mark.django_db
def test_without_debug_errors_are_plain_pages(client_for, project, researcher, settings, rf):
    from django.views.defaults import server_error

    settings.DEBUG = False
    response = client_for(researcher).get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404 and "Page not found" in page and "URLconf" not in page
    page = server_error(rf.get("/")).content.decode()
    assert "Something went wrong on our side" in page and "Traceback" not in page


def test_launcher_turns_debug_off_unless_a_developer_asks(tmp_path, monkeypatch):
    from webapp import launcher

    monkeypatch.setattr(launcher, "VAR", tmp_path)
    env = launcher.debug_env({})
    assert env["DJANGO_DEBUG"] == "0" and "127.0.0.1" in env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert env["DJANGO_SECRET_KEY"] == launcher.debug_env({})["DJANGO_SECRET_KEY"]  # kept in var/, sessions survive
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert launcher.debug_env({"DISTILLERY_DEV": "1"}) == {"DJANGO_DEBUG": "1"}
    assert launcher.debug_env({"DJANGO_DEBUG": "1"}) == {}
    result = _load_settings(**{k: v for k, v in env.items() if k != "DJANGO_DEBUG"}, DJANGO_DEBUG="0")
    assert result.returncode == 0, result.stderr  # the settings it passes load without DEBUG
