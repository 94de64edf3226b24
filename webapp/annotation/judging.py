"""Teacher-as-judge jobs: create one over chosen comparisons (enqueued on the gpu queue after
commit), and its lifecycle steps (claim, progress, finish, cancel, rerun, reap: webapp.lifecycle). The worker turns each
comparison into plain items (`judge_job_items`) and stores verdicts through
services.teacher_judgement_record. Progress goes to the researchers' judging group (events.py):
{"event": "judge.progress", "job", "status", "done", "total", "eta" (s left or null), "error", "unparseable"
(comparisons whose endpoint judge answer could not be read), "low_answer_mass" (verdicts stored below the
job's answer-mass threshold)}, and the judge socket sends the recent jobs on connect. A generative job
carries its rubric: the judge template, the two answer labels and the answer-mass threshold, checked
here by ml.config.check_judge_template (the rule both judges apply)."""
import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction

from ml.config import DEFAULT_ANSWER_MASS_THRESHOLD, DEFAULT_JUDGE_TEMPLATE, ConfigError, check_judge_template

from webapp import lifecycle
from webapp.annotation import events
from webapp.annotation.models import Comparison, ComparisonItem, JudgeJob, JudgeMethod
from webapp.celery import enqueue
from webapp.projects.live import publish

TASK = "workers.tasks.gpu.judging.run_judge_job"


def judge_name_for(*, method: str, teacher, reference=None, beta: float = 0.01, template: str = "",
                   labels: tuple[str, str] = ("A", "B")) -> str:
    """A judge's stable identity: one judgement per comparison and judge (re-runs replace it). Another
    rubric (template or labels) is another judge, so its verdicts sit beside the default one's."""
    if method == JudgeMethod.IMPLICIT_REWARD:
        return f"teacher:{method}:{teacher.name}|{reference.name}|beta={beta:g}"
    name = f"teacher:{method}:{teacher.name}"
    if method == JudgeMethod.GENERATIVE and tuple(labels) != ("A", "B"):
        name += f"|answers={'/'.join(labels)}"
    if method == JudgeMethod.GENERATIVE and rubric_template(template) not in ("", DEFAULT_JUDGE_TEMPLATE):
        name += f"|template={hashlib.sha256(rubric_template(template).encode()).hexdigest()[:8]}"
    return name


def rubric_template(template: str) -> str:
    """A template as the judge asks it: browsers send a textarea's lines ending in CRLF."""
    return (template or "").replace("\r\n", "\n").strip()


def judge_rubric_check(*, template: str, labels: tuple[str, str], threshold: float) -> None:
    """ValidationError (the field's name and what is wrong) unless the rubric can be asked."""
    try:
        check_judge_template(template or DEFAULT_JUDGE_TEMPLATE, labels)
    except ConfigError as error:
        raise ValidationError({error.field if error.field == "template" else "first_label": str(error)}) from None
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError({"answer_mass_threshold": "The answer-mass threshold is a probability, between 0 and 1."})


def judge_job_create(*, project, created_by, teacher, method: str, comparisons, reference=None, beta: float = 0.01,
                     template: str = "", labels: tuple[str, str] = ("A", "B"),
                     answer_mass_threshold: float = DEFAULT_ANSWER_MASS_THRESHOLD) -> JudgeJob:
    ids = list(comparisons.filter(project=project).order_by("id").values_list("id", flat=True))
    if not ids:
        raise ValidationError("No comparisons match: nothing to judge.")
    if teacher.project_id != project.pk or (reference is not None and reference.project_id != project.pk):
        raise ValidationError("The judge models must belong to this project.")
    if method == JudgeMethod.IMPLICIT_REWARD and reference is None:
        raise ValidationError("The implicit reward needs π_sft as the reference model (the teacher is π_dpo).")
    template, labels = rubric_template(template), tuple(label.strip() for label in labels)
    judge_rubric_check(template=template, labels=labels, threshold=answer_mass_threshold)
    name = judge_name_for(method=method, teacher=teacher, reference=reference, beta=beta, template=template, labels=labels)
    with transaction.atomic():
        job = JudgeJob.objects.create(project=project, created_by=created_by, teacher=teacher, reference=reference,
                                      method=method, beta=beta, comparison_ids=ids, progress_total=len(ids),
                                      template="" if template == DEFAULT_JUDGE_TEMPLATE else template,
                                      first_label=labels[0], second_label=labels[1],
                                      answer_mass_threshold=answer_mass_threshold, judge_name=name)
        _publish(job)
        enqueue(TASK, job.pk)
    return job


def judge_job_rubric(job: JudgeJob) -> dict:
    """The generative judge's options for the worker: template, labels, warn_below (the threshold)."""
    return {"template": job.template or DEFAULT_JUDGE_TEMPLATE, "labels": (job.first_label, job.second_label),
            "warn_below": job.answer_mass_threshold}


def judge_job_claim(*, job_id: int, worker: str = "") -> tuple[JudgeJob, int] | None:
    """queued → running (webapp.lifecycle): the job and this claim's attempt, or None."""
    attempt = JOBS.claim(job_id, worker=worker)
    return None if attempt is None else (JudgeJob.objects.select_related("teacher", "reference").get(pk=job_id), attempt)


def judge_job_items(*, job: JudgeJob, ids: list[int]) -> list[dict]:
    """Plain data for the worker: [{comparison, kind, prompt (text or messages), candidates: [(gen id, text)]}]."""
    comparisons = {c.pk: c for c in Comparison.objects.filter(pk__in=ids).select_related("prompt")}
    candidates = {}
    for item in ComparisonItem.objects.filter(comparison_id__in=ids).select_related("generation").order_by("position"):
        candidates.setdefault(item.comparison_id, []).append((item.generation_id, item.generation.text))
    return [{"comparison": cid, "kind": comparisons[cid].kind,
             "prompt": comparisons[cid].prompt.messages or comparisons[cid].prompt.text, "candidates": candidates[cid]}
            for cid in ids if cid in comparisons and len(candidates.get(cid, [])) >= 2]


def judge_job_cancel(*, job: JudgeJob) -> str:
    return JOBS.cancel(job)


def judge_job_rerun(*, job: JudgeJob) -> JudgeJob:
    """failed / cancelled → queued; the rerun judges every comparison again (replacing this judge's verdicts)."""
    return JOBS.rerun(job, progress_done=0, unparseable=0, low_answer_mass=0)


def progress_message(job: JudgeJob) -> dict:
    return {"event": "judge.progress", "job": job.pk, "status": job.status, "done": job.progress_done,
            "total": job.progress_total, "eta": lifecycle.eta_seconds(job), "error": job.error,
            "unparseable": job.unparseable, "low_answer_mass": job.low_answer_mass}


def judge_jobs_snapshot(*, project, limit: int = 50) -> dict:
    """The judge socket's catch-up: the newest jobs' state (the page lists the newest first)."""
    jobs = JudgeJob.objects.filter(project=project).order_by("-pk")[:limit]
    return {"event": "judge.snapshot", "jobs": [progress_message(job) for job in jobs]}


def _publish(job: JudgeJob) -> None:
    publish(events.judging_group(job.project_id), progress_message(job))


JOBS = lifecycle.JobKind(JudgeJob, task=TASK, publish=_publish)
judge_job_progress = JOBS.progress  # (job=, attempt=, done=) → lifecycle.GO / CANCEL / LOST
judge_job_finish = JOBS.finish  # (job=, attempt=, status=, error=) → False when the job is no longer ours
judge_jobs_reap_stale = JOBS.reap
