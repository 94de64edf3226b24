"""Writes for evaluations: creating one (and enqueuing its job), the job's claim/progress/finish
steps, storing answers, evaluation comparisons and machine judgements (teacher-judge, oracle),
sending comparisons to the human queue, and storing the project leaderboard. Every write that a
browser watches publishes its event after commit."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ml.standard_benchmarks import BenchmarkError, parse_tasks
from webapp.annotation.models import (Comparison, ComparisonItem, ComparisonStatus, Judgement,
                                      JudgementSource)
from webapp import lifecycle
from webapp.catalog.models import ModelRole
from webapp.celery import enqueue
from webapp.evaluation import events
from webapp.evaluation.models import Evaluation, EvaluationOutput, Leaderboard
from webapp.lifecycle import JobStatus
from webapp.generation.models import Generation

JUDGES = ("teacher", "oracle", "humans")
TEACHER_JUDGES = ("generative", "likelihood", "implicit")
RUN_TASK = "workers.tasks.gpu.evaluation.run_evaluation"
RESULTS_TASK = "workers.tasks.evaluation.refresh_results"
LEADERBOARD_TASK = "workers.tasks.evaluation.refresh_leaderboard"
ACTIVE = lifecycle.ACTIVE


def evaluation_create(*, project, name: str, teacher, model_versions, prompt_set, judges: list, config: dict,
                      created_by=None) -> Evaluation:
    """Validates the choice of models, prompts and judges, stores the evaluation and enqueues its job."""
    candidates = [mv for mv in model_versions if mv.pk != teacher.pk]
    problems = []
    if teacher.project_id != project.pk or teacher.role != ModelRole.TEACHER:
        problems.append("The reference must be a teacher of this project.")
    if not candidates:
        problems.append("Pick at least one model version to compare with the teacher.")
    if any(mv.project_id != project.pk for mv in candidates) or prompt_set.project_id != project.pk:
        problems.append("Models and prompts must belong to this project.")
    if not judges or set(judges) - set(JUDGES):
        problems.append(f"Pick judges among {', '.join(JUDGES)}.")
    if config.get("teacher_judge", "generative") not in TEACHER_JUDGES:
        problems.append(f"The teacher-judge is one of {', '.join(TEACHER_JUDGES)}.")
    if config.get("teacher_judge") == "implicit" and not (config.get("teacher_dpo_id") and config.get("teacher_sft_id")):
        problems.append("The implicit-reward judge needs the teacher after DPO and after SFT.")
    try:
        parse_tasks(config.get("benchmarks") or [])
    except BenchmarkError as exc:
        problems.append(f"Standard benchmarks: {exc}")
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        evaluation = Evaluation.objects.create(project=project, name=name, teacher=teacher, prompt_set=prompt_set,
                                               judges=list(judges), config=config, created_by=created_by)
        evaluation.model_versions.set(candidates)
        enqueue(RUN_TASK, evaluation.id)
    return evaluation


JOBS = lifecycle.JobKind(Evaluation, task=RUN_TASK, publish=events.publish_evaluation)  # progress, finish
evaluations_reap_stale = JOBS.reap


def evaluation_claim(*, evaluation_id: int, worker: str = "") -> int | None:
    """queued → running (webapp.lifecycle): this claim's attempt, or None (a redelivered task, or
    cancelled meanwhile, finds nothing to claim)."""
    return JOBS.claim(evaluation_id, worker=worker, stage="starting")


def evaluation_cancel(*, evaluation: Evaluation) -> bool:
    """A queued evaluation is cancelled at once; a running one stops at its next batch (cooperative)."""
    return bool(JOBS.cancel(evaluation))


def evaluation_rerun(*, evaluation: Evaluation) -> Evaluation:
    """failed / cancelled → queued; answers already stored are reused, the judging runs again."""
    return JOBS.rerun(evaluation, stage="queued (rerun)")


def generation_record(*, prompt, model_version, text: str, token_count: int, token_logps=None, origin: str,
                      temperature: float = 0.0) -> Generation:
    return Generation.objects.create(prompt=prompt, model_version=model_version, text=text, token_count=token_count,
                                     token_logps=token_logps, temperature=temperature, top_p=1.0, origin=origin)


@transaction.atomic
def evaluation_output_store(*, evaluation, model_version, prompt, text: str, token_count: int, token_logps=None,
                            oracle_correct=None) -> EvaluationOutput:
    """One answer of the evaluation; an answer already stored (a re-run) is returned unchanged."""
    existing = EvaluationOutput.objects.filter(evaluation=evaluation, model_version=model_version, prompt=prompt).first()
    if existing is not None:
        return existing
    generation = generation_record(prompt=prompt, model_version=model_version, text=text, token_count=token_count,
                                   token_logps=token_logps, origin="evaluation")
    return EvaluationOutput.objects.create(evaluation=evaluation, model_version=model_version, prompt=prompt,
                                           generation=generation, oracle_correct=oracle_correct)


def evaluation_output_signals(*, output: EvaluationOutput, signals: dict) -> None:
    EvaluationOutput.objects.filter(pk=output.pk).update(signals=signals)


def pair_comparison_store(*, project, prompt, first, second, source: str, priority: float = 0.0,
                          for_humans: bool = True, required_annotations: int = 1, evaluation=None,
                          loop_round=None) -> Comparison:
    """A pairwise comparison of two generations (position 0 = `first`, verdict "a"). Comparisons only
    machines judge are stored complete, so the annotation queue (open ones) never shows them."""
    existing = Comparison.objects.filter(project=project, prompt=prompt, source=source, evaluation=evaluation,
                                         loop_round=loop_round, items__generation=first).first()
    if existing is not None:
        return existing
    status = ComparisonStatus.OPEN if for_humans else ComparisonStatus.COMPLETE
    with transaction.atomic():
        comparison = Comparison.objects.create(project=project, prompt=prompt, source=source, priority=priority,
                                               status=status, required_annotations=required_annotations,
                                               evaluation=evaluation, loop_round=loop_round)
        ComparisonItem.objects.bulk_create([ComparisonItem(comparison=comparison, generation=first, position=0),
                                            ComparisonItem(comparison=comparison, generation=second, position=1)])
    return comparison


def machine_judgement_store(*, comparison, source: str, judge_name: str, verdict: str, probability=None,
                            judge_model=None, shown_order=None, details=None) -> Judgement:
    """A teacher-judge or oracle verdict; one per (comparison, judge), so a re-run overwrites it."""
    if source not in (JudgementSource.TEACHER, JudgementSource.ORACLE):
        raise ValueError(f"machine judgements come from the teacher or the oracle, not {source!r}")
    first, second = ComparisonItem.objects.filter(comparison=comparison).order_by("position").values_list(
        "generation_id", flat=True)
    ranking = {"a": [[first], [second]], "b": [[second], [first]]}.get(verdict, [[first, second]])
    judgement, _ = Judgement.objects.update_or_create(
        comparison=comparison, judge_name=judge_name[:200], annotator=None,
        defaults={"source": source, "verdict": verdict, "probability": probability, "judge_model": judge_model,
                  "ranking": ranking, "shown_order": shown_order or [first, second], "details": details or {}})
    return judgement


def evaluation_results_store(*, evaluation: Evaluation, results: dict) -> None:
    """Merges `results` into the stored ones (the job writes model stats, refreshes write win rates)."""
    with transaction.atomic():
        locked = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
        locked.results = {**locked.results, **results, "computed_at": timezone.now().isoformat()}
        locked.save(update_fields=["results"])
    evaluation.results = locked.results
    events.publish_results(evaluation)


def evaluation_send_to_humans(*, evaluation: Evaluation, required_annotations: int = 1) -> int:
    """Opens the evaluation's comparisons to the annotation queue (blind: the queue shows no model
    names); returns how many were opened. Their verdicts join the results as they arrive."""
    if evaluation.status != JobStatus.SUCCEEDED:
        raise ValidationError("Only a finished evaluation can be sent to annotators.")
    if not 1 <= required_annotations <= 10:
        raise ValidationError("Between 1 and 10 annotations per comparison.")
    opened = Comparison.objects.filter(evaluation=evaluation, status=ComparisonStatus.COMPLETE).exclude(
        judgements__source=JudgementSource.HUMAN).update(status=ComparisonStatus.OPEN,
                                                         required_annotations=required_annotations)
    if "humans" not in evaluation.judges:
        Evaluation.objects.filter(pk=evaluation.pk).update(judges=[*evaluation.judges, "humans"])
    return opened


def evaluation_results_refresh_later(*, evaluation_id: int) -> None:
    """Asks a worker to recompute the win rates (e.g. a human verdict arrived)."""
    enqueue(RESULTS_TASK, evaluation_id)


def leaderboard_store(*, project, scores: dict) -> Leaderboard:
    leaderboard, _ = Leaderboard.objects.update_or_create(project=project, defaults={"scores": scores})
    events.publish_leaderboard(leaderboard)
    return leaderboard


def leaderboard_refresh_later(*, project) -> None:
    enqueue(LEADERBOARD_TASK, project.id)

