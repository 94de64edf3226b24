""""Run the demo loop" end to end in Chromium with real Celery workers (gpu and default) on the tiny
demo models: one click on the project home generates, builds comparisons, teacher-judges them,
freezes a snapshot, trains a DCKD student (π_dpo first, from π_sft) and evaluates it against the
base student; the home shows each step as it goes and ends on the evaluation, whose page ranks the
trained student next to the base. (The tiny models are random-init, so which one wins is not
asserted here; benchmarks/bench_loop.py measures the gain on the real demo world.)"""
import pytest

from tests.webapp.conftest import PASSWORD
from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp.evaluation.models import Evaluation
from webapp.projects import demo_loop
from webapp.training.models import TrainingRun


@pytest.mark.browser
@pytest.mark.slow
def test_run_the_demo_loop_from_the_home_page(transactional_db, asgi_server, celery_workers, page, project, researcher,
                                              tiny_demo_dir, artifacts_dir):
    register_demo_models(project, tiny_demo_dir)
    import_demo_prompts(project, tiny_demo_dir)
    page.goto(f"{asgi_server}/login/")
    page.fill("input[name=username]", researcher.username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/p/{project.slug}/")
    page.click("#demo-loop-start")
    page.wait_for_selector("#demo-loop-steps .loop-step.current")
    assert page.is_disabled("#demo-loop-start")
    seen_steps = set()
    for _ in range(600):  # up to ten minutes on two loaded cores
        current = page.query_selector("#demo-loop-steps .loop-step.current .step-body")
        if current:
            seen_steps.add(current.inner_text())
        if page.query_selector("#demo-loop-evaluation") or page.inner_text("#demo-loop-error").strip():
            break
        page.wait_for_timeout(1000)
    page.wait_for_selector("#demo-loop-evaluation")
    page.wait_for_selector('#loop-steps .loop-step.done[data-step="5"]')  # reloaded: the guide shows training done
    page.screenshot(path=str(artifacts_dir / "demo-loop-home.png"), full_page=True)
    state = demo_loop.demo_loop_state(project_id=project.pk)
    assert state["status"] == "succeeded", (state, page.inner_text("#demo-loop-error"))
    assert len(seen_steps) >= 3  # the page followed the steps as they went
    run = TrainingRun.objects.get(pk=state["ids"]["run"])
    assert run.method == "dckd" and run.status == "succeeded" and run.config["learning_rate"] > 5e-7  # sized, not 7B defaults
    evaluation = Evaluation.objects.get(pk=state["ids"]["evaluation"])
    assert evaluation.status == "succeeded"
    assert set(evaluation.model_versions.values_list("pk", flat=True)) >= {state["ids"]["student"], state["ids"]["trained"]}
    page.click("#demo-loop-evaluation")
    page.wait_for_url(f"**/evaluations/{evaluation.pk}/")
    body = page.inner_text("body")
    trained = run.model_versions.get(pk=state["ids"]["trained"])
    assert trained.role == "student" and trained.parent_id == state["ids"]["student"]
    assert "tiny-student" in body and trained.name in body
    page.screenshot(path=str(artifacts_dir / "demo-loop-evaluation.png"), full_page=True)
