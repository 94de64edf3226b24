"""The run page's one live socket, in Chromium against the real ASGI server: the teacher-hacking
monitor listens on the page's own run socket (one WebSocket per page, not a second one beside it)
and still shows a checkpoint evaluation published while the page is open; and the DPO collapse
guardrail (webapp/training/guardrails.py, the one rule) is live: streamed metric points whose
logps/chosen start falling steadily make the warning appear without a reload, with the very text
the Python rule gives for the stored points, and a recovery makes it go. Runs are rows written
directly and points are stored through the recorder's service (no gpu worker): these tests are about
what the page receives."""
import pytest

from tests.webapp.annotation.conftest import off_loop
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.lifecycle import JobStatus
from webapp.training import checkpoint_evals, guardrails, services
from webapp.training.models import MetricPoint, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _running_run(project, researcher, **fields) -> TrainingRun:
    student = ModelVersion.objects.create(project=project, name="student-1b", role="student", source="org/student")
    return TrainingRun.objects.create(project=project, name="dpo-live", method="dpo", student=student,
                                      created_by=researcher, status=JobStatus.RUNNING, attempt=1, step=0,
                                      total_steps=1000, **fields)


def _open(page, client, asgi_server, researcher, run):
    client.force_login(researcher)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{asgi_server}/p/{run.project.slug}/training/runs/{run.id}/")
    page.wait_for_function("() => document.getElementById('live-indicator').textContent === 'live'", timeout=30_000)
    return sockets


def _eval_metrics(oracle: float, agreement: float) -> dict:
    return {"oracle": {"value": oracle, "low": oracle - 0.05, "high": oracle + 0.05},
            "teacher_agreement": {"value": agreement, "low": agreement - 0.05, "high": agreement + 0.05},
            "teacher_kl": 0.5, "win_rate": None}


def test_the_monitor_listens_on_the_run_pages_one_socket(page, client, asgi_server, project, researcher):
    heldout = PromptSet.objects.create(project=project, name="heldout")
    run = _running_run(project, researcher, eval_prompt_set=heldout, eval_every_steps=10, eval_sample_size=8)
    off_loop(lambda: checkpoint_evals.checkpoint_eval_record(run_id=run.id, step=0, metrics=_eval_metrics(0.30, 0.40)))
    sockets = _open(page, client, asgi_server, researcher, run)
    page.wait_for_function("() => document.querySelectorAll('#monitor-table tbody tr').length === 1", timeout=30_000)
    assert page.is_visible("#monitor-chart")  # the monitor is on this page, and running

    off_loop(lambda: checkpoint_evals.checkpoint_eval_record(run_id=run.id, step=10, metrics=_eval_metrics(0.35, 0.45)))
    page.wait_for_function("() => document.querySelectorAll('#monitor-table tbody tr').length === 2", timeout=30_000)
    assert page.eval_on_selector_all("#monitor-table tbody tr", "rows => rows.map(r => r.dataset.step)") == ["0", "10"]
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # arrived live
    page.wait_for_timeout(500)  # any late second connection would have opened by now
    assert sockets == [f"{asgi_server.replace('http://', 'ws://')}/ws/p/{project.slug}/training/runs/{run.id}/?after=-1"]


def _points(start: int, values) -> list[dict]:
    return [{"step": start + i, "epoch": 0.0, "tokens": 0, "values": {"loss": 0.6, "logps/chosen": v}}
            for i, v in enumerate(values)]


def _store(run, points):
    assert off_loop(lambda: services.run_progress_store(run_id=run.id, attempt=1, points=points, log_lines=[],
                                                        log_tail="", step=points[-1]["step"]))


def test_the_collapse_warning_appears_and_goes_live(page, client, asgi_server, project, researcher, artifacts_dir):
    run = _running_run(project, researcher)
    healthy = _points(1, [-12.0 + 0.01 * (s % 3) for s in range(20)])
    MetricPoint.objects.bulk_create([MetricPoint(run=run, **p) for p in healthy])
    _open(page, client, asgi_server, researcher, run)
    assert page.is_hidden("#collapse-warning")

    # Streamed in one-second-sized batches, as the recorder sends them: logps/chosen starts to fall.
    falling = _points(21, [-12.0 - 0.5 * s for s in range(40)])
    for batch in (falling[:20], falling[20:]):
        _store(run, batch)
    page.wait_for_selector("#collapse-warning", state="visible", timeout=30_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # no reload
    verdict = guardrails.run_collapse(run=run)  # the one rule, on what is stored
    assert verdict is not None and verdict["end_step"] == 60
    page.wait_for_function(f"() => window.distilleryRun.collapse && window.distilleryRun.collapse.end_step === 60")
    assert page.text_content("#collapse-message") == verdict["message"]
    page.screenshot(path=str(artifacts_dir / "training-run-collapse-live.png"), full_page=True)

    # It recovers: back up to where it started and level there; the rule goes quiet and so does the page.
    _store(run, _points(61, [-32.0 + 0.5 * s for s in range(40)] + [-12.0] * 60))
    assert guardrails.run_collapse(run=run) is None
    page.wait_for_selector("#collapse-warning", state="hidden", timeout=30_000)

    # A page opened now agrees (server-rendered and caught up from the snapshot): no warning.
    page.reload()
    page.wait_for_function("() => document.getElementById('live-indicator').textContent === 'live'", timeout=30_000)
    assert page.is_hidden("#collapse-warning")
