"""One Ctrl-C stops the playground, even while a browser holds a stream open (Gradio's heartbeat):
before, uvicorn waited for that connection to close and a second Ctrl-C was needed."""
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import httpx
import pytest

from tests.conftest import REPO
from tests.webapp.conftest import PASSWORD, admin_user, project, researcher  # noqa: F401  (fixtures)
from webapp.embedded import free_port

pytestmark = [pytest.mark.slow]


def _wait_up(proc, url):
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            assert time.monotonic() < deadline, "the playground did not answer within 90 s"
            time.sleep(0.5)


def test_one_sigint_stops_the_playground_with_a_stream_open(transactional_db, service_env, project, researcher, tiny_demo_dir):
    from gradio_client import Client

    from tests.webapp.evaluation.factories import register_demo_models

    teacher, student = register_demo_models(project, tiny_demo_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "workers.playground", "--port", str(port)], cwd=REPO, env=service_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    try:
        _wait_up(proc, url + "/")
        client = httpx.Client(base_url=url, timeout=None)
        assert client.post("/login", data={"username": researcher.username, "password": PASSWORD}).status_code in (200, 302)
        streaming = threading.Event()

        def hold_a_stream():  # what an open browser tab does
            try:
                with client.stream("GET", "/gradio_api/heartbeat/t8session") as response:
                    streaming.set()
                    for _ in response.iter_raw():
                        pass
            except httpx.HTTPError:
                pass

        threading.Thread(target=hold_a_stream, daemon=True).start()
        assert streaming.wait(30)
        answering = Client(url + "/", auth=(researcher.username, PASSWORD), verbose=False).submit(
            project.slug, teacher.id, student.id, "What is 3 plus 4?", 1.0, 512, api_name="/answer")
        deadline = time.monotonic() + 60
        while len(answering.outputs()) < 2 and time.monotonic() < deadline:  # both models are streaming
            time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 15 s after one SIGINT")
        took = time.monotonic() - started
        assert took < 3 and proc.returncode == 0, (took, proc.returncode, proc.stdout.read().decode()[-1500:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
