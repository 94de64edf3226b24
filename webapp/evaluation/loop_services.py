"""Writes for the closed loop: starting a "next round" (the latest student answers fresh prompts; its
comparisons with the teacher enter the annotation queue ordered by teacher-student disagreement) and
the round job's claim/progress/finish steps. The playground's writes live in playground.py."""
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from webapp import lifecycle
from webapp.annotation.models import ComparisonSource
from webapp.catalog.models import ModelRole
from webapp.celery import enqueue
from webapp.evaluation import events
from webapp.evaluation.models import LoopRound
from webapp.evaluation.services import pair_comparison_store

ROUND_TASK = "workers.tasks.gpu.loop.run_round"
ONE_ACTIVE = "loopround_one_active_per_project"  # the constraint that keeps one round in progress
IN_PROGRESS = "A round is already in progress; wait for it to finish, or cancel it."


def _constraint(exc: IntegrityError) -> str:
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "") or ""


def loop_round_start(*, project, student, teacher, prompt_set, prompt_count: int, created_by=None) -> LoopRound:
    """Numbers the round (one more than the last) and enqueues its job."""
    if student.project_id != project.pk or student.role == ModelRole.TEACHER:
        raise ValidationError("The round's student must be a non-teacher model version of this project.")
    if teacher.project_id != project.pk or teacher.role != ModelRole.TEACHER:
        raise ValidationError("The round's teacher must be a teacher of this project.")
    if prompt_set.project_id != project.pk:
        raise ValidationError("The prompt set must belong to this project.")
    if not 1 <= prompt_count <= 5000:
        raise ValidationError("A round takes between 1 and 5000 fresh prompts.")
    # A crashed round (its worker died) must not block the next one until beat's reaper gets to it.
    loop_rounds_reap_stale()
    if LoopRound.objects.filter(project=project, status__in=lifecycle.ACTIVE).exists():
        raise ValidationError(IN_PROGRESS)  # the common case, said early; the constraint decides races
    for _ in range(3):  # two researchers clicking at once race for the number: retry on the unique constraint
        number = (LoopRound.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                loop_round = LoopRound.objects.create(project=project, number=number, student=student, teacher=teacher,
                                                      prompt_set=prompt_set, prompt_count=prompt_count,
                                                      created_by=created_by)
                enqueue(ROUND_TASK, loop_round.id)
            return loop_round
        except IntegrityError as exc:
            if _constraint(exc) == ONE_ACTIVE:
                raise ValidationError(IN_PROGRESS) from None
            continue
    raise ValidationError("Could not number the round; try again.")


JOBS = lifecycle.JobKind(LoopRound, task=ROUND_TASK, publish=events.publish_round)


def loop_round_claim(*, round_id: int, worker: str = "") -> int | None:
    """queued → running (webapp.lifecycle): this claim's attempt, or None."""
    return JOBS.claim(round_id, worker=worker, stage="starting")


def loop_round_progress(*, loop_round: LoopRound, attempt: int, stage: str, done: int, total: int) -> str:
    """Progress with a heartbeat; returns lifecycle.GO, CANCEL or LOST."""
    return JOBS.progress(loop_round, attempt=attempt, stage=stage, done=done, total=total)


def loop_round_finish(*, loop_round: LoopRound, attempt: int, stats: dict | None = None, error: str = "",
                      status: str | None = None) -> bool:
    """Ends this attempt (failed when `error`), merging `stats`; a reaped or re-claimed round is left as it is."""
    status = status or (lifecycle.JobStatus.FAILED if error else lifecycle.JobStatus.SUCCEEDED)
    extra = {"stats": {**loop_round.stats, **stats}} if stats is not None else {}
    return JOBS.finish(loop_round, attempt=attempt, status=status, error=error, **extra)


def loop_round_cancel(*, loop_round: LoopRound) -> str:
    return JOBS.cancel(loop_round)


def loop_round_rerun(*, loop_round: LoopRound) -> LoopRound:
    """failed / cancelled → queued (its number is kept); it answers fresh prompts again."""
    try:
        with transaction.atomic():
            return JOBS.rerun(loop_round, stage="queued (rerun)")
    except IntegrityError as exc:
        if _constraint(exc) != ONE_ACTIVE:
            raise
        raise ValidationError("A round is already in progress; wait for it to finish.") from None


def loop_rounds_reap_stale() -> int:
    return JOBS.reap()


def loop_comparison_store(*, loop_round: LoopRound, prompt, teacher_generation, student_generation,
                          disagreement: float):
    """Teacher (position 0) vs student, open for people, priority = disagreement (largest first)."""
    return pair_comparison_store(project=loop_round.project, prompt=prompt, first=teacher_generation,
                                 second=student_generation, source=ComparisonSource.LOOP, priority=disagreement,
                                 loop_round=loop_round)
