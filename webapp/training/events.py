"""Live events of training runs: the channel group names and every message's schema live here, so
the worker (publisher), the consumers (relay + snapshot) and static/training/*.js agree on one shape.

Groups (named by webapp/live_groups.py): `training.run.<id>` (one run's page: status, metric points,
log lines) and `training.project.<id>` (the run lists: status rows). Messages, each a dict with "event":
- run.snapshot  {run, points, log, more, collapse} sent on connect; `points` only after the client's step,
                                                  at most SNAPSHOT_PAGE of them; `more` says run.points
                                                  pages follow (a 20,000-step history is megabytes, past
                                                  the server's 1 MiB WebSocket message limit); `collapse`
                                                  as in run.guardrail
- run.points    {run_id, points: [point, ...]}    point = {step, epoch, tokens, t, values}
- run.status    {run}                             run = run_state(..., detail=True): with checkpoints
- run.log       {run_id, lines: [str, ...]}
- run.truncate  {run_id, after_step}              a resume dropped the points after its checkpoint
- run.guardrail {run_id, collapse}                the DPO collapse guardrail re-checked after points that
                                                  carry logps/chosen were stored: collapse =
                                                  guardrails.collapse_verdict(...) or None
- run.checkpoint_eval {run_id, point}             webapp/training/checkpoint_evals.py
- runs.snapshot {runs: [run, ...]} / runs.status {run}   on the project group
"""
from webapp import live_groups
from webapp.lifecycle import JobStatus
from webapp.training import guardrails
from webapp.training.models import ACTIVE_STATUSES, Checkpoint, MetricPoint, TrainingRun

# Points per catch-up message: ~150 bytes each with DPO's metrics, so a page stays far below 1 MiB.
SNAPSHOT_PAGE = 1000


run_group = live_groups.training_run
project_group = live_groups.training_project


def point_payload(point: MetricPoint) -> dict:
    return {"step": point.step, "epoch": point.epoch, "tokens": point.tokens,
            "t": point.created_at.timestamp() if point.created_at else None, "values": point.values}


def queue_position(run: TrainingRun) -> int | None:
    """1 = next to be picked up by a gpu worker; None when the run is not queued."""
    if run.status != JobStatus.QUEUED:
        return None
    return TrainingRun.objects.filter(status=JobStatus.QUEUED, id__lt=run.id).count() + 1


def run_state(run: TrainingRun, *, detail: bool = False) -> dict:
    """What every view of a run shows: status, progress and how it ended (`detail` adds the
    checkpoints, for the run's own page)."""
    state = {
        "id": run.id, "name": run.name, "method": run.method, "method_label": run.get_method_display(),
        "status": run.status, "status_label": run.get_status_display(), "active": run.status in ACTIVE_STATUSES,
        "step": run.step, "total_steps": run.total_steps, "stage": run.stage, "attempt": run.attempt,
        "cancel_requested": run.cancel_requested, "error": run.error, "traceback": run.traceback,
        "queue_position": queue_position(run), "worker": run.worker,
        "started_at": run.started_at.timestamp() if run.started_at else None,
        "finished_at": run.finished_at.timestamp() if run.finished_at else None,
        "model_version": _model_version(run),
    }
    if detail:
        state["checkpoints"] = [{"step": c.step, "is_final": c.is_final, "path": c.path}
                                for c in Checkpoint.objects.filter(run=run).order_by("step")]
    return state


def _model_version(run: TrainingRun):
    version = run.model_versions.order_by("-id").first() if run.status == JobStatus.SUCCEEDED else None
    return {"id": version.id, "name": version.name} if version else None


def run_snapshot(run: TrainingRun, *, after_step: int = -1) -> list[dict]:
    """The catch-up messages: everything a browser that has seen steps <= after_step is missing, as
    one run.snapshot with the first page of points, then run.points pages in step order."""
    points = MetricPoint.objects.filter(run=run, step__gt=after_step).order_by("step")
    pages, page = [], []
    for point in points.iterator(chunk_size=SNAPSHOT_PAGE):
        page.append(point_payload(point))
        if len(page) == SNAPSHOT_PAGE:
            pages.append(page)
            page = []
    if page or not pages:
        pages.append(page)
    first = {"event": "run.snapshot", "run": run_state(run, detail=True), "points": pages[0], "log": run.log_tail,
             "more": len(pages) > 1, "collapse": guardrails.run_collapse(run=run)}
    return [first] + [{"event": "run.points", "run_id": run.id, "points": rest} for rest in pages[1:]]


def points_event(run_id: int, points: list[MetricPoint]) -> dict:
    return {"event": "run.points", "run_id": run_id, "points": [point_payload(p) for p in points]}


def status_event(run: TrainingRun) -> dict:
    return {"event": "run.status", "run": run_state(run, detail=True)}


def log_event(run_id: int, lines: list[str]) -> dict:
    return {"event": "run.log", "run_id": run_id, "lines": lines}


def truncate_event(run_id: int, after_step: int) -> dict:
    return {"event": "run.truncate", "run_id": run_id, "after_step": after_step}


def guardrail_event(run: TrainingRun) -> dict:
    return {"event": "run.guardrail", "run_id": run.id, "collapse": guardrails.run_collapse(run=run)}


def runs_snapshot(project) -> dict:
    runs = TrainingRun.objects.filter(project=project).order_by("-created_at")[:100]
    return {"event": "runs.snapshot", "runs": [run_state(r) for r in runs]}


def runs_status_event(run: TrainingRun) -> dict:
    return {"event": "runs.status", "run": run_state(run)}
