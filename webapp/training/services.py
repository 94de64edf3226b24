"""Writes for training runs: launching (config validated by ml.config), cancel/resume, presets, the
lifecycle the gpu worker drives (claim, heartbeat with progress, finish, reaper: thin wrappers over
webapp.lifecycle, plus metric points and checkpoints). Tasks and views call these; nothing else
changes a run's status. Every status change is published to the run's and the project's groups."""
import json
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from ml.config import config_from_dict, config_to_dict
from ml.trackers import TrackerError, parse_report_to
from webapp import lifecycle
from webapp.catalog.models import ModelRole, ModelVersion, TeacherStage
from webapp.catalog.services import model_version_register
from webapp.celery import enqueue
from webapp.projects.live import publish
from webapp.training import events, guardrails
from webapp.training.models import Checkpoint, MetricPoint, RunPreset, TrainingRun
from webapp.lifecycle import JobStatus

TRAIN_TASK = "workers.tasks.gpu.training.train_run"
LOG_TAIL_LINES = 300


def run_dir(run_id: int) -> Path:
    """Where a run's checkpoints and final model live."""
    return settings.DATA_DIR / "runs" / str(run_id)


def _announce(run: TrainingRun) -> None:
    publish(events.run_group(run.id), events.status_event(run))
    publish(events.project_group(run.project_id), events.runs_status_event(run))


def required_teachers(method: str, config) -> dict[str, str]:
    """Teacher inputs a method cannot run without, {field: why}. π_dpo is never required: a run
    without one first trains it from π_sft on the snapshot (β=0.01), cached for later runs."""
    if method in ("kd", "taid") or (method == "sft" and config.target == "teacher") \
            or (method == "dpo" and config.reference == "teacher"):
        return {"teacher": f"{method.upper()} with this config distils from a teacher."}
    if method == "dckd":
        return {"teacher_sft": "DCKD needs π_sft (to train π_dpo from) unless π_dpo is given."}
    if method in ("adpa", "adpa_plus"):
        return {"teacher_sft": "ADPA's advantage is log π_dpo − log π_sft: it needs π_sft."}
    return {}


def _check_inputs(*, project, method, config, snapshot, student, teacher, teacher_sft, teacher_dpo) -> None:
    errors = {}
    given = {"snapshot": snapshot, "student": student, "teacher": teacher, "teacher_sft": teacher_sft,
             "teacher_dpo": teacher_dpo}
    for field, row in given.items():
        if row is not None and row.project_id != project.id:
            errors[field] = "Belongs to another project."
    if snapshot is None:
        errors["snapshot"] = "Every method trains on a preference snapshot."
    elif not snapshot.pair_count and not snapshot.pairs.exists():
        errors["snapshot"] = f"Snapshot {snapshot.name} has no preference pairs."
    if student is None:
        errors["student"] = "Choose the student to start from."
    needed = required_teachers(method, config)
    if method == "dckd" and teacher_dpo is not None:
        needed = {}
    for field, why in needed.items():
        if given[field] is None:
            errors[field] = why
    if errors:
        raise ValidationError(errors)


def run_create(*, project, created_by, method: str, config: dict, snapshot, student, name: str = "",
               teacher=None, teacher_sft=None, teacher_dpo=None, cloned_from=None, report_to: str = "") -> TrainingRun:
    """Validates and queues a run on the gpu queue. Raises ConfigError (bad hyperparameter) or
    ValidationError (missing or foreign inputs, an unknown tracker in report_to: "" = the deployment's)."""
    validated = config_from_dict(method, config)
    report_to = report_to_clean(report_to)
    _check_inputs(project=project, method=method, config=validated, snapshot=snapshot, student=student,
                  teacher=teacher, teacher_sft=teacher_sft, teacher_dpo=teacher_dpo)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project, created_by=created_by, method=method, config=config_to_dict(validated),
            snapshot=snapshot, student=student, teacher=teacher, teacher_sft=teacher_sft, teacher_dpo=teacher_dpo,
            cloned_from=cloned_from, name=name or "pending", report_to=report_to)
        if not name:
            run.name = f"{method}-{student.name}-{run.id}"
            run.save(update_fields=["name"])
        enqueue(TRAIN_TASK, run.id)
        _announce(run)
    return run


def report_to_clean(value: str) -> str:
    """A run's report_to, normalised ("MLflow, tensorboard" -> "mlflow,tensorboard"; "none" kept, since
    it overrides the deployment's trackers). Raises ValidationError naming the field."""
    try:
        names = parse_report_to(value or "")
    except TrackerError as exc:
        raise ValidationError({"report_to": str(exc)}) from None
    return ",".join(names) or ("none" if (value or "").strip().lower() == "none" else "")


def run_report_to(run: TrainingRun) -> tuple[str, ...]:
    """The trackers this run reports to: its own choice, else the deployment's (settings.REPORT_TO)."""
    return parse_report_to(run.report_to or settings.REPORT_TO)


def run_trackers_record(*, run_id: int, trackers: dict) -> None:
    """The tracker runs a worker opened for this run (links for the run page), kept across resumes:
    a resumed run opens new tracker runs, and the page links the latest."""
    TrainingRun.objects.filter(id=run_id).update(trackers=trackers)


def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """A queued run is cancelled at once; a running one gets the flag its training loop checks
    between steps, and stops after writing a resumable checkpoint."""
    if not lifecycle.job_cancel(TrainingRun, pk=run.id, stage=""):
        raise ValidationError(f"Run {run.name} is {run.status}; only queued or running runs can be cancelled.")
    run.refresh_from_db()
    _announce(run)
    return run


def run_resume(*, run: TrainingRun) -> TrainingRun:
    """failed/cancelled → queued again, continuing from the last checkpoint (weights, optimizer,
    scheduler and RNG), or from the start when none was written. Points after it are dropped, so
    the curve continues from the checkpoint rather than showing two histories."""
    checkpoint = run.checkpoints.filter(is_final=False).order_by("-step").first()
    after = checkpoint.step if checkpoint else 0
    with transaction.atomic():
        updated = lifecycle.job_rerun(TrainingRun, pk=run.id, resume_from=checkpoint, step=after, traceback="",
                                      stage="queued to resume" if checkpoint else "queued (restart)")
        if not updated:
            raise ValidationError(f"Run {run.name} is {run.status}; only failed or cancelled runs can be resumed.")
        MetricPoint.objects.filter(run=run, step__gt=after).delete()
        run.refresh_from_db()
        publish(events.run_group(run.id), events.truncate_event(run.id, after))
        enqueue(TRAIN_TASK, run.id)
        _announce(run)
    return run


def preset_save(*, project, created_by, name: str, method: str, config: dict) -> RunPreset:
    """Saves (or overwrites, by name) a validated config as a preset."""
    validated = config_to_dict(config_from_dict(method, config))
    preset, _ = RunPreset.objects.update_or_create(
        project=project, name=name, defaults={"method": method, "config": validated, "created_by": created_by})
    return preset


# --- the lifecycle, driven by the gpu worker -------------------------------------------------

def run_claim(*, run_id: int, worker: str) -> int | None:
    """queued → running (webapp.lifecycle). Returns the claim's attempt number, or None when
    somebody else claimed it (or it is no longer queued)."""
    attempt = lifecycle.job_claim(TrainingRun, pk=run_id, worker=worker, traceback="")
    if attempt is not None:
        _announce(TrainingRun.objects.get(id=run_id))
    return attempt


def run_heartbeat(*, run_id: int, attempt: int, **fields) -> bool:
    """Beats the heartbeat (and stores progress fields: step, total_steps, stage, log_tail). False
    when this claim was lost, e.g. the reaper failed the run meanwhile: the worker must then stop."""
    if not fields:
        return lifecycle.job_heartbeat(TrainingRun, pk=run_id, attempt=attempt)
    signal = lifecycle.job_progress(TrainingRun, pk=run_id, attempt=attempt, done=fields.pop("step", None),
                                    total=fields.pop("total_steps", None), stage=fields.pop("stage", None), **fields)
    return signal != lifecycle.LOST


def run_cancel_requested(*, run_id: int) -> bool:
    return lifecycle.job_cancel_requested(TrainingRun, pk=run_id)


def run_progress_store(*, run_id: int, attempt: int, points: list[dict], log_lines: list[str], log_tail: str,
                       **fields) -> bool:
    """Stores a batch of metric points (idempotent per step), beats the heartbeat with the progress
    fields, then publishes points, the collapse guardrail (after DPO's logps/chosen), log lines and
    status. False when the claim was lost."""
    rows = [MetricPoint(run_id=run_id, **p) for p in points]
    with transaction.atomic():
        if not run_heartbeat(run_id=run_id, attempt=attempt, log_tail=log_tail, **fields):
            return False
        stored = MetricPoint.objects.bulk_create(rows, update_conflicts=True, unique_fields=["run", "step"],
                                                 update_fields=["epoch", "tokens", "values"])
        run = TrainingRun.objects.get(id=run_id)
        if stored:
            publish(events.run_group(run_id), events.points_event(run_id, stored))
        if any(guardrails.KEY in p["values"] for p in points):  # the page's warning follows the stream
            publish(events.run_group(run_id), events.guardrail_event(run))
        if log_lines:
            publish(events.run_group(run_id), events.log_event(run_id, log_lines))
        _announce(run)
    return True


def model_card_text(run: TrainingRun, *, step: int, metrics: dict, is_final: bool) -> str:
    snapshot = run.snapshot
    lines = [f"# {run.name} — {'final model' if is_final else f'checkpoint at step {step}'}", "",
             f"- method: {run.get_method_display()} (`{run.method}`)", f"- training run: {run.id}, step {step}",
             f"- started from: {run.student.name} (`{run.student.source}`)"]
    if snapshot is not None:
        lines.append(f"- preference snapshot: {snapshot.name}, sha256 {snapshot.content_hash}, {snapshot.pair_count} pairs")
    for label, model in (("teacher", run.teacher), ("π_sft", run.teacher_sft), ("π_dpo", run.teacher_dpo)):
        if model is not None:
            lines.append(f"- {label}: {model.name} (`{model.source}`)")
    lines += tokenizer_mode_lines(run)
    lines += ["", "## Metrics (last step)", ""] + [f"- {k}: {v:.6g}" for k, v in sorted(metrics.items())
                                                   if isinstance(v, (int, float))]
    lines += ["", "## Config", "", "```json", json.dumps(run.config, indent=2), "```", ""]
    return "\n".join(lines)


def tokenizer_mode_lines(run: TrainingRun) -> list[str]:
    """The model card's lineage line on tokenizers (ml.cross_tokenizer): same, or different and the mode."""
    from ml.cross_tokenizer import mode_of, same_fingerprint

    teacher = run.teacher_sft or run.teacher_dpo or run.teacher
    if teacher is None or teacher.is_endpoint:
        return []
    same = same_fingerprint(teacher.source, run.student.source)
    if same is None:
        return []
    mode, why = mode_of(run.method, same)
    return [f"- tokenizers: {'same' if same else 'different'} (teacher {teacher.name}, student {run.student.name}): "
            f"{mode}" + (f", {why}" if why else "")]


def checkpoint_record(*, run: TrainingRun, step: int, path, is_final: bool = False, metrics=None) -> Checkpoint:
    """Registers a checkpoint directory (an HF model dir with tokenizer) and writes its model card."""
    metrics = metrics or {}
    Path(path, "README.md").write_text(model_card_text(run, step=step, metrics=metrics, is_final=is_final))
    checkpoint, _ = Checkpoint.objects.update_or_create(
        run=run, step=step, defaults={"path": str(path), "is_final": is_final, "metrics": metrics})
    return checkpoint


def run_fail(*, run_id: int, attempt: int, error: str, traceback: str = "", log_tail: str = "") -> bool:
    finished = lifecycle.job_finish(TrainingRun, pk=run_id, attempt=attempt, status=JobStatus.FAILED, error=error,
                                    traceback=traceback, log_tail=log_tail)
    _announce(TrainingRun.objects.get(id=run_id))
    return finished


def run_stopped(*, run_id: int, attempt: int, step: int, checkpoint_dir, metrics=None, log_tail: str = "") -> None:
    """A cooperative cancel ended the run: record its resumable checkpoint, mark it cancelled."""
    run = TrainingRun.objects.get(id=run_id)
    with transaction.atomic():
        if checkpoint_dir is not None and Path(checkpoint_dir).is_dir():
            checkpoint_record(run=run, step=step, path=checkpoint_dir, metrics=metrics)
        lifecycle.job_finish(TrainingRun, pk=run_id, attempt=attempt, status=JobStatus.CANCELLED, step=step, stage="",
                             log_tail=log_tail)
        run.refresh_from_db()
        _announce(run)


def run_succeed(*, run_id: int, attempt: int, steps: int, final_dir, metrics: dict, log_tail: str = ""):
    """Marks the run succeeded, then registers the final checkpoint and the new student model version
    (lineage: parent, snapshot, method, config), in one transaction. Returns the model version, or
    None when this claim was lost (the run was reaped or rerun meanwhile): nothing is then written."""
    run = TrainingRun.objects.select_related("student", "snapshot").get(id=run_id)
    with transaction.atomic():
        if not lifecycle.job_finish(TrainingRun, pk=run_id, attempt=attempt, status=JobStatus.SUCCEEDED, step=steps,
                                    stage="", log_tail=log_tail):
            return None
        checkpoint_record(run=run, step=steps, path=final_dir, is_final=True, metrics=metrics)
        version = model_version_register(
            project=run.project, name=f"{run.name} (run {run.id})", role=ModelRole.STUDENT, source=str(final_dir),
            parent=run.student, produced_by=run, snapshot=run.snapshot, method=run.method, config=run.config)
        run.refresh_from_db()
        _announce(run)
    return version


def teacher_dpo_register(*, run: TrainingRun, base, source) -> ModelVersion:
    """The π_dpo a pipeline trained (or found cached) for this run: one model version per weights
    directory, reused by later runs; the run then points at it. Two workers finishing with the same
    cached π_dpo at once register it once: the base version's row lock orders them."""
    with transaction.atomic():
        ModelVersion.objects.select_for_update().only("pk").get(pk=base.pk)
        version = base.project.model_versions.filter(source=str(source)).first()
        if version is None:
            version = model_version_register(
                project=base.project, name=f"{base.name} + DPO (β=0.01, {run.snapshot.name}, run {run.id})",
                role=ModelRole.TEACHER, stage=TeacherStage.DPO, source=str(source), parent=base, produced_by=run,
                snapshot=run.snapshot, method="dpo", config={"beta": 0.01})
        TrainingRun.objects.filter(id=run.id).update(teacher_dpo=version)
    return version


def teacher_endpoint_use(*, run: TrainingRun, version: ModelVersion) -> None:
    """An endpoint teacher serves a DCKD run as its DPO teacher as it is (nothing can train an
    endpoint into a π_dpo): the run's π_dpo points at the endpoint version, so its lineage and the
    model card name the endpoint."""
    TrainingRun.objects.filter(id=run.id).update(teacher_dpo=version)
    run.teacher_dpo = version


def runs_reap_stale(*, now=None) -> int:
    """Fails running runs whose heartbeat went silent (webapp.lifecycle). Returns how many."""
    ids = lifecycle.jobs_reap_stale(TrainingRun, now=now)
    for run in TrainingRun.objects.filter(id__in=ids):
        _announce(run)
    return len(ids)
