"""Checkpoint evaluations and the teacher-hacking monitor, in Chromium against daphne and real Celery
workers: a DPO run launched from the form with a held-out set and a cadence shows its checkpoint
evaluations arriving live (no reload) as monitor-chart points and table rows; a reload catches up
on all of them; a checkpoint registers as a model version with its lineage from the table; the
compare page draws the run's monitor."""
import json

import pytest

from webapp.catalog.models import ModelVersion, PromptSet
from webapp.catalog.services import prompts_bulk_create
from webapp.training.models import CheckpointEvaluation, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STEPS, SAVE_EVERY, EVAL_EVERY = 60, 10, 20


def _heldout(project, tiny_demo_dir):
    rows = [json.loads(line) for line in (tiny_demo_dir / "prompts" / "eval.jsonl").read_text().splitlines()]
    prompt_set = PromptSet.objects.create(project=project, name="demo-heldout")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": r["prompt"], "metadata": r, "split": "eval"} for r in rows])
    return prompt_set


def _rows(page) -> list[str]:
    return page.eval_on_selector_all("#monitor-table tbody tr", "rows => rows.map(r => r.dataset.step)")


def test_run_from_the_form_shows_checkpoint_evaluations_live(page, client, asgi_server, celery_workers, project,
                                                             researcher, snapshot, demo_models, tiny_demo_dir,
                                                             artifacts_dir):
    heldout = _heldout(project, tiny_demo_dir)
    client.force_login(researcher)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    page.goto(f"{asgi_server}/p/{project.slug}/training/new/?method=dpo")
    page.select_option("select[name=snapshot]", str(snapshot.id))
    page.select_option("select[name=student]", str(demo_models["student"].id))
    page.select_option("select[name=teacher]", str(demo_models["teacher"].id))
    page.select_option("select[name=eval_prompt_set]", str(heldout.id))
    page.fill("input[name=eval_every_steps]", str(EVAL_EVERY))
    page.fill("input[name=eval_sample_size]", "8")
    for name, value in {"max_steps": STEPS, "save_every_steps": SAVE_EVERY, "batch_size": 4, "grad_accum": 1,
                        "max_length": 64, "learning_rate": "1e-3", "warmup_ratio": "0"}.items():
        page.fill(f"input[name='cfg:{name}']", str(value))
    page.click("#launch")
    page.wait_for_url("**/training/runs/*/")
    run = TrainingRun.objects.get(project=project)
    assert (run.eval_prompt_set, run.eval_every_steps, run.eval_sample_size) == (heldout, EVAL_EVERY, 8)

    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.wait_for_function("() => document.querySelectorAll('#monitor-table tbody tr').length >= 1", timeout=120_000)
    except Exception:
        run.refresh_from_db()
        raise AssertionError(f"no evaluation shown: run {run.status} step {run.step} stage {run.stage!r} error "
                             f"{run.error!r}; stored {CheckpointEvaluation.objects.filter(run=run).count()}; "
                             f"page errors {errors}")
    page.wait_for_function("() => document.querySelectorAll('#monitor-table tbody tr').length >= 4", timeout=240_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # arrived live
    assert _rows(page) == ["0", "20", "40", "60"]
    proxy = page.evaluate("() => window.distilleryMonitor.chart.data.datasets[0].data.map(p => p.x)")
    ground = page.evaluate("() => window.distilleryMonitor.chart.data.datasets[1].data.map(p => p.y)")
    assert proxy == [0, 20, 40, 60] and len(ground) == 4 and all(0.0 <= y <= 1.0 for y in ground)
    stored = list(CheckpointEvaluation.objects.filter(run=run).order_by("step").values_list("step", flat=True))
    assert stored == [0, 20, 40, 60]
    page.screenshot(path=str(artifacts_dir / "training-monitor-live.png"), full_page=True)

    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#monitor-table tbody tr').length === 4", timeout=30_000)
    assert _rows(page) == ["0", "20", "40", "60"]  # the reload caught up on every point

    page.click("#monitor-table tbody tr[data-step='40'] .register-checkpoint")
    page.wait_for_load_state()
    version = ModelVersion.objects.get(produced_by=run, config__checkpoint_step=40)
    assert (version.parent, version.snapshot, version.method) == (demo_models["student"], snapshot, "dpo")

    page.goto(f"{asgi_server}/p/{project.slug}/training/compare/?runs={run.id}")
    page.wait_for_function(f"() => document.querySelector('.monitor-card[data-run-id=\"{run.id}\"] .monitor-empty').hidden === true",
                           timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "training-monitor-compare.png"), full_page=True)
