"""Live events of evaluations and loop rounds. One group per project, `evaluation.project.<id>` (webapp/live_groups.py),
carries every event (pages filter by id); messages are flat JSON:

- {"event": "evaluation", "id", "status", "stage", "done", "total", "eta", "error"}   progress (eta: s left or null)
- {"event": "evaluation_results", "id"}                                        results changed (reload)
- {"event": "round", "id", "number", "status", "stage", "done", "total", "eta", "error"}
- {"event": "leaderboard", "computed_at"}                                       ISO 8601 text

Every value is plain JSON: the channel layer (msgpack) refuses a raw datetime, and that refusal would
fail the task that published it."""
from webapp import live_groups
from webapp.lifecycle import eta_seconds
from webapp.projects.live import publish


project_group = live_groups.evaluation_project


def evaluation_state(evaluation) -> dict:
    return {"event": "evaluation", "id": evaluation.id, "status": evaluation.status, "stage": evaluation.stage,
            "done": evaluation.progress_done, "total": evaluation.progress_total, "eta": eta_seconds(evaluation),
            "error": evaluation.error}


def round_state(loop_round) -> dict:
    return {"event": "round", "id": loop_round.id, "number": loop_round.number, "status": loop_round.status,
            "stage": loop_round.stage, "done": loop_round.progress_done, "total": loop_round.progress_total,
            "eta": eta_seconds(loop_round), "error": loop_round.error}


def publish_evaluation(evaluation) -> None:
    publish(project_group(evaluation.project_id), evaluation_state(evaluation))


def publish_results(evaluation) -> None:
    publish(project_group(evaluation.project_id), {"event": "evaluation_results", "id": evaluation.id})


def publish_round(loop_round) -> None:
    publish(project_group(loop_round.project_id), round_state(loop_round))


def publish_leaderboard(leaderboard) -> None:
    publish(project_group(leaderboard.project_id), {"event": "leaderboard",
                                                         "computed_at": leaderboard.computed_at.isoformat()})
