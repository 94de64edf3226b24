"""Checkpoint evaluations during a run and the teacher-hacking monitor built on them: the worker
stores each checkpoint's light evaluation here (and it is published to the run's page), the run and
compare pages read the monitor's points and verdict, and any checkpoint can be registered on demand
as a model version with its lineage (run, step, snapshot, method, config).

Live event on the run group (webapp/training/events.run_group):
- run.checkpoint_eval {run_id, point}   point = checkpoint_eval_payload(...)
A reloading page catches up from `run_monitor` (rendered into the page and served as JSON)."""
from django.db import transaction

from webapp.catalog.models import ModelRole, ModelVersion
from webapp.catalog.services import model_version_register
from webapp.projects.live import publish
from webapp.training import events
from webapp.training.models import Checkpoint, CheckpointEvaluation, TrainingRun
from webapp.training.monitor import best_checkpoint, hacking_verdict, monitor_point


def run_eval_settings_set(*, run: TrainingRun, prompt_set, every: int, sample_size: int, judge: str) -> None:
    """A run's checkpoint-evaluation settings (before it is claimed): off when `every` is 0."""
    TrainingRun.objects.filter(id=run.id).update(eval_prompt_set=prompt_set if every else None, eval_every_steps=every,
                                                 eval_sample_size=sample_size, eval_judge=judge)


def checkpoint_eval_payload(evaluation: CheckpointEvaluation) -> dict:
    metrics = {k: v for k, v in evaluation.metrics.items() if k != "answers"}
    return {"step": evaluation.step, "checkpoint_id": evaluation.checkpoint_id, "metrics": metrics,
            "monitor": monitor_point(evaluation.step, evaluation.metrics)}


def checkpoint_eval_record(*, run_id: int, step: int, metrics: dict) -> CheckpointEvaluation:
    """Stores (or replaces, on a rerun) the light evaluation of the run's checkpoint at `step`,
    links it to that checkpoint when one is registered, and publishes it after commit."""
    checkpoint = Checkpoint.objects.filter(run_id=run_id, step=step).first()
    with transaction.atomic():
        evaluation, _ = CheckpointEvaluation.objects.update_or_create(
            run_id=run_id, step=step, defaults={"metrics": metrics, "checkpoint": checkpoint})
        publish(events.run_group(run_id), {"event": "run.checkpoint_eval", "run_id": run_id,
                                           "point": checkpoint_eval_payload(evaluation)})
    return evaluation


def run_monitor(*, run: TrainingRun) -> dict:
    """Everything the monitor chart shows: the points, the hacking verdict (over every stretch of the
    run, past episodes included) and the best checkpoint by the ground-truth metric."""
    points = [checkpoint_eval_payload(e) for e in run.checkpoint_evaluations.order_by("step")]
    monitor = [p["monitor"] for p in points]
    verdict = hacking_verdict(monitor)
    return {"points": points, "best_step": best_checkpoint(monitor),
            "verdict": {"hacking": verdict.hacking, "level": verdict.level, "message": verdict.message,
                        "start_step": verdict.start_step, "end_step": verdict.end_step,
                        "recovered": verdict.recovered, "badge": verdict.badge, "episodes": list(verdict.episodes)}}


def checkpoint_model_version(checkpoint: Checkpoint) -> ModelVersion | None:
    return ModelVersion.objects.filter(project_id=checkpoint.run.project_id, source=checkpoint.path).first()


def checkpoint_register(*, checkpoint: Checkpoint) -> ModelVersion:
    """A checkpoint as a student model version, with the run's lineage and the step in its config
    (`checkpoint_step`). Registering the same checkpoint twice returns the existing version."""
    existing = checkpoint_model_version(checkpoint)
    if existing is not None:
        return existing
    run = checkpoint.run
    return model_version_register(
        project=run.project, name=f"{run.name} (run {run.id}, step {checkpoint.step})", role=ModelRole.STUDENT,
        source=checkpoint.path, parent=run.student, produced_by=run, snapshot=run.snapshot, method=run.method,
        config={**run.config, "checkpoint_step": checkpoint.step})
