""""Run the demo loop" as a newcomer meets it, in Chromium, on the REAL demo world (`python -m ml demo
build`'s default spec, built once and cached: tests/webapp/projects/conftest.py): `bootstrap_demo`
makes the Demo project as `make run` does, the admin logs in and clicks the button on the project
home, and real Celery workers (gpu and default) generate, build teacher-vs-student comparisons,
teacher-judge them, freeze a snapshot, train a DCKD student (π_dpo first, from π_sft) and evaluate
it against the base student on held-out prompts. The home follows each step as it goes; the
evaluation page, read as the newcomer reads it, shows the trained student's oracle accuracy above
the base student's."""
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Error as PlaywrightError

from webapp.evaluation.models import Evaluation
from webapp.projects import demo_loop
from webapp.projects.models import Project
from webapp.training.models import TrainingRun

NEWCOMER_PASSWORD = "first-hour-Distillery-2026"


def _oracle_accuracy(page, model_version_id: int) -> float:
    """The oracle accuracy shown for one model version in the evaluation page's results table."""
    cell = page.inner_text(f'#results tr[data-model="{model_version_id}"] td.oracle')
    return float(re.match(r"\s*([0-9.]+)", cell).group(1))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(1800)  # counts the session fixture too: a cold demo build (4-10 min) plus the loop (3-5 min)
def test_run_the_demo_loop_makes_a_student_that_beats_the_base(transactional_db, demo_world_dir, asgi_server,
                                                              celery_workers, page, artifacts_dir):
    call_command("bootstrap_demo", demo_dir=str(demo_world_dir), password=NEWCOMER_PASSWORD)
    project = Project.objects.get(slug="demo")
    page.goto(f"{asgi_server}/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", NEWCOMER_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/p/demo/")
    page.click("#demo-loop-start")
    page.wait_for_selector("#demo-loop-steps .loop-step.current")
    assert page.is_disabled("#demo-loop-start")
    seen_steps = set()
    for _ in range(900):  # up to fifteen minutes on two loaded cores (a few on quiet ones)
        try:
            current = page.query_selector("#demo-loop-steps .loop-step.current .step-body")
            if current:
                seen_steps.add(current.inner_text())
            if page.query_selector("#demo-loop-evaluation") or page.inner_text("#demo-loop-error").strip():
                break
        except PlaywrightError:  # the home reloaded itself between two reads (a step finished): read again
            pass
        page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts_dir / "demo-loop-real-home.png"), full_page=True)
    state = demo_loop.demo_loop_state(project_id=project.pk)
    assert state["status"] == "succeeded", (state, page.inner_text("#demo-loop-error"))
    assert len(seen_steps) >= 3  # the page followed the steps as they went
    run = TrainingRun.objects.get(pk=state["ids"]["run"])
    assert run.method == "dckd" and run.status == "succeeded" and run.config["learning_rate"] > 5e-7  # sized, not 7B
    evaluation = Evaluation.objects.get(pk=state["ids"]["evaluation"])
    base, trained = state["ids"]["student"], state["ids"]["trained"]
    assert evaluation.status == "succeeded" and run.model_versions.get(pk=trained).parent_id == base

    page.click("#demo-loop-evaluation")
    page.wait_for_url(f"**/evaluations/{evaluation.pk}/")
    page.wait_for_selector("#results")
    page.screenshot(path=str(artifacts_dir / "demo-loop-real-evaluation.png"), full_page=True)
    base_accuracy, trained_accuracy = _oracle_accuracy(page, base), _oracle_accuracy(page, trained)
    against_parent = page.inner_text(f'.regression[data-model="{trained}"]')  # the paired bootstrap Δ and its CI
    print(f"demo loop on the real demo world: base {base_accuracy:.3f} -> trained {trained_accuracy:.3f} "
          f"({demo_loop.EVAL_PROMPTS} held-out prompts; notes: {state['notes']}); {against_parent}")
    assert "demo-student" in page.inner_text("#results")
    assert trained_accuracy > base_accuracy, (base_accuracy, trained_accuracy, state["notes"])
    assert not page.query_selector(f'.regression.below[data-model="{trained}"]')
