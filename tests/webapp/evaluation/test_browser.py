"""The researcher's evaluation journey in Chromium against daphne and real Celery workers, on the
demo project (bootstrap_demo on the tiny demo world, plus a student briefly SFT-trained with
ml.recipes): start an evaluation from the form, watch it finish live, read win rate with CI, oracle
accuracy and the leaderboard, open the side-by-side view with its heatmap, then send the comparisons
to people and see a human verdict join the win rates without reloading by hand."""
import re
import shutil
import threading

import pytest
import torch
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ml.config import SFTConfig
from ml.data import SFTExample
from ml.demo.tasks import generate_tasks
from ml.recipes.sft import train
from tests.webapp.conftest import PASSWORD, browser_login
from webapp.annotation.models import Comparison
from webapp.annotation.services import judgement_record
from webapp.catalog.models import ModelVersion
from webapp.catalog.services import model_version_register
from webapp.evaluation.models import Evaluation
from webapp.projects.models import Project, Role
from webapp.projects.services import member_set_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _sft(source, out, *, steps: int, seed: int):
    """A brief SFT (ml.recipes.sft) on oracle-correct answers of demo tasks."""
    examples = [SFTExample(task.prompt, task.answer) for task in generate_tasks(300, seed=seed)]
    config = SFTConfig(learning_rate=1e-2, batch_size=32, grad_accum=1, max_steps=steps, num_epochs=100, max_length=64)
    return train(config, examples, out, student=str(source), device="cpu").final_dir


@pytest.fixture
def demo(tiny_demo_dir, tmp_path):
    """The demo project on a copy of the tiny demo world whose teacher is trained (as a real demo
    build's is), plus a briefly trained student."""
    torch.set_num_threads(1)
    world = tmp_path / "demo"
    shutil.copytree(tiny_demo_dir, world)
    shutil.rmtree(world / "teacher")
    shutil.copytree(_sft(tiny_demo_dir / "teacher", tmp_path / "teacher-sft", steps=200, seed=4), world / "teacher")
    call_command("bootstrap_demo", demo_dir=str(world), username="demo-admin", password=PASSWORD)
    project = Project.objects.get(slug="demo")
    base = ModelVersion.objects.get(project=project, name="demo-student")
    trained = _sft(base.source, tmp_path / "student-sft", steps=120, seed=5)
    student = model_version_register(project=project, name="demo-student-sft", role="student", source=str(trained),
                                     parent=base, method="sft")
    annotator = get_user_model().objects.create_user(username="ann-annotator", password=PASSWORD)
    member_set_role(project=project, user=annotator, role=Role.ANNOTATOR)
    return project, student, annotator


def test_evaluation_from_the_ui_to_side_by_side(page, asgi_server, celery_workers, demo, artifacts_dir):
    project, student, annotator = demo
    browser_login(page, asgi_server, "demo-admin")
    page.goto(f"{asgi_server}/p/demo/evaluations/")
    page.fill("input[name=name]", "trained student vs teacher")
    for box in page.query_selector_all("input[name=model_versions]"):
        box.set_checked(box.get_attribute("value") == str(student.id))
    page.fill("input[name=prompt_limit]", "12")
    page.fill("input[name=max_new_tokens]", "8")
    page.click("#start-evaluation")
    page.wait_for_url(re.compile(r".*/evaluations/\d+/$"))
    evaluation = Evaluation.objects.get(project=project)

    # The page reloads itself when the job ends (socket event); results then show.
    page.wait_for_selector("#results .winrate[data-source=teacher]", timeout=180_000)
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.error
    results = page.text_content("#results")
    win = evaluation.results["versus_teacher"][str(student.id)]["teacher"]
    assert f"{win['rate']:.3f} [{win['low']:.3f}, {win['high']:.3f}]" in results
    oracle = evaluation.results["models"][str(student.id)]["oracle"]["overall"]
    assert page.text_content(f"#results tr[data-model='{student.id}'] .oracle").strip().startswith(f"{oracle:.3f}")
    rows = page.query_selector_all("#leaderboard-table tr")
    assert len(rows) == 3  # header + teacher + trained student
    page.screenshot(path=str(artifacts_dir / "evaluation-results.png"), full_page=True)

    page.click("#side-by-side-link")
    page.wait_for_selector(".heatmap span")
    assert len(page.query_selector_all("[data-row]")) == 12
    first_token = page.query_selector(".heatmap span")
    assert "teacher_logp" in first_token.get_attribute("title")
    page.keyboard.press("2")  # per-token KL
    assert "kl = " in page.query_selector(".heatmap span").get_attribute("title")
    page.keyboard.press("j")
    assert page.query_selector("[data-row].current") is not None
    page.screenshot(path=str(artifacts_dir / "evaluation-side-by-side.png"), full_page=True)
    with page.expect_navigation():
        page.check("input[name=losses]")  # filters apply on change
    losses = len(page.query_selector_all("[data-row]"))
    assert losses == sum(1 for c in Comparison.objects.filter(evaluation=evaluation).prefetch_related("judgements")
                         if any(j.verdict == "b" for j in c.judgements.all()))

    # Human blind evaluation: open the comparisons to people; a verdict joins the win rates live.
    page.goto(f"{asgi_server}/p/demo/evaluations/{evaluation.id}/")
    page.click("#send-to-humans")
    page.wait_for_selector("text=comparisons sent to the annotation queue")
    comparison = Comparison.objects.filter(evaluation=evaluation, status="open").order_by("-priority").first()
    candidate, reference = comparison.items.order_by("position").values_list("generation_id", flat=True)
    # An annotator's verdict, recorded off Playwright's thread (its event loop blocks async_to_sync).
    person = threading.Thread(target=judgement_record, kwargs={
        "comparison": comparison, "annotator": annotator, "ranking": [[candidate], [reference]]})
    person.start()
    person.join()
    page.wait_for_selector("#results .winrate[data-source=human]", timeout=60_000)
    assert "n=1" in page.text_content("#results .winrate[data-source=human]")
    page.screenshot(path=str(artifacts_dir / "evaluation-human-verdict.png"), full_page=True)
    page.goto(f"{asgi_server}/p/demo/leaderboard/?source=human")  # the human verdict is a game there too
    page.wait_for_selector("#leaderboard-table", timeout=60_000)
    assert len(page.query_selector_all("#leaderboard-table tr")) == 3
