"""The Gradio playground, really served: a researcher logs in with their Distillery account, both
models answer (streamed: several partial updates; greedy answers equal ml.generation's), a pair goes
to the annotation queue, and an annotator sees no project in it. Also `python -m workers.playground`
starts and serves its page."""
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from gradio_client import Client

from ml.generation import generate
from ml.modeling import load_model
from tests.conftest import REPO
from tests.webapp.conftest import PASSWORD, admin_user, annotator, project, researcher  # noqa: F401  (fixtures)
from tests.webapp.evaluation.factories import register_demo_models
from webapp.annotation.models import Comparison
from webapp.annotation.selectors import comparison_next_for
from webapp.embedded import free_port
from workers.playground import build_app, django_auth, project_choices

pytestmark = [pytest.mark.slow]


@pytest.fixture
def served(transactional_db, project, researcher, tiny_demo_dir):
    torch.set_num_threads(1)
    teacher, student = register_demo_models(project, tiny_demo_dir)
    app = build_app().queue()
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, auth=django_auth, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", teacher, student
    app.close()


def test_playground_answers_with_both_models_and_sends_a_pair(served, project, researcher, annotator):
    url, teacher, student = served
    client = Client(url, auth=(researcher.username, PASSWORD), verbose=False)
    prompt = "What is 3 plus 4?"

    job = client.submit(project.slug, teacher.id, student.id, prompt, 0.0, 8, api_name="/answer")
    teacher_text, student_text, _status = job.result()
    expected = [generate(load_model(mv.source, device="cpu").model, load_model(mv.source, device="cpu").tokenizer,
                         [prompt], temperature=0.0, max_new_tokens=8)[0][0].text for mv in (teacher, student)]
    assert [teacher_text, student_text] == expected
    assert len(job.outputs()) > 2  # tokens arrived one update at a time
    if not (teacher_text.strip() and student_text.strip()):  # a tiny random model may stop at once when greedy
        assert client.predict(api_name="/send_pair").startswith("Not sent: Both models must have answered")

    teacher_text, student_text, _ = client.predict(project.slug, teacher.id, student.id, prompt, 0.9, 12,
                                                   api_name="/answer")
    assert teacher_text.strip() and student_text.strip()
    status = client.predict(api_name="/send_pair")
    assert status.startswith("Sent: comparison #"), status
    comparison = Comparison.objects.get(project=project, source="playground")
    first, second = [item.generation for item in comparison.items.order_by("position")]
    assert (first.model_version_id, first.text, second.model_version_id, second.text) == (
        teacher.id, teacher_text, student.id, student_text)
    assert comparison.prompt.text == prompt and comparison.status == "open"
    assert comparison_next_for(project=project, annotator=annotator) == comparison


def test_annotators_get_no_project_and_no_answers(served, project, annotator):
    url, teacher, student = served
    assert project_choices(annotator.username) == []
    client = Client(url, auth=(annotator.username, PASSWORD), verbose=False)
    with pytest.raises(Exception):
        client.predict(project.slug, teacher.id, student.id, "What is 1 plus 1?", 0.0, 4, api_name="/answer")
    assert not Comparison.objects.filter(project=project).exists()


def test_make_playground_entry_point_serves(service_env):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workers.playground", "--port", str(port)], cwd=REPO, env=service_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the playground did not answer within 90 s"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
