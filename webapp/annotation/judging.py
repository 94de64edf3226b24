"""Teacher-as-judge jobs: create one over chosen comparisons (enqueued on the gpu queue after
commit), claim it with one conditional UPDATE, report progress, finish. The worker turns each
comparison into plain items (`judge_job_items`) and stores verdicts through
services.teacher_judgement_record. Progress goes to the annotation group as
{"event": "judge.progress", "job", "status", "done", "total", "error"}."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.annotation import events
from webapp.annotation.models import Comparison, ComparisonItem, JudgeJob, JudgeMethod
from webapp.celery import enqueue
from webapp.projects.live import publish

TASK = "workers.tasks.gpu.judging.run_judge_job"


def judge_name_for(*, method: str, teacher, reference=None, beta: float = 0.01) -> str:
    """A judge's stable identity: one judgement per comparison and judge (re-runs replace it)."""
    if method == JudgeMethod.IMPLICIT_REWARD:
        return f"teacher:{method}:{teacher.name}|{reference.name}|beta={beta:g}"
    return f"teacher:{method}:{teacher.name}"


def judge_job_create(*, project, created_by, teacher, method: str, comparisons, reference=None, beta: float = 0.01) -> JudgeJob:
    ids = list(comparisons.filter(project=project).order_by("id").values_list("id", flat=True))
    if not ids:
        raise ValidationError("No comparisons match: nothing to judge.")
    if teacher.project_id != project.pk or (reference is not None and reference.project_id != project.pk):
        raise ValidationError("The judge models must belong to this project.")
    if method == JudgeMethod.IMPLICIT_REWARD and reference is None:
        raise ValidationError("The implicit reward needs π_sft as the reference model (the teacher is π_dpo).")
    with transaction.atomic():
        job = JudgeJob.objects.create(project=project, created_by=created_by, teacher=teacher, reference=reference,
                                      method=method, beta=beta, comparison_ids=ids, progress_total=len(ids),
                                      judge_name=judge_name_for(method=method, teacher=teacher, reference=reference, beta=beta))
        _publish(job)
        enqueue(TASK, job.pk)
    return job


def judge_job_claim(*, job_id: int) -> JudgeJob | None:
    now = timezone.now()
    if not JudgeJob.objects.filter(pk=job_id, status="queued").update(status="running", started_at=now, heartbeat_at=now):
        return None
    job = JudgeJob.objects.select_related("teacher", "reference").get(pk=job_id)
    _publish(job)
    return job


def judge_job_items(*, job: JudgeJob, ids: list[int]) -> list[dict]:
    """Plain data for the worker: [{comparison, kind, prompt (text or messages), candidates: [(gen id, text)]}]."""
    comparisons = {c.pk: c for c in Comparison.objects.filter(pk__in=ids).select_related("prompt")}
    candidates = {}
    for item in ComparisonItem.objects.filter(comparison_id__in=ids).select_related("generation").order_by("position"):
        candidates.setdefault(item.comparison_id, []).append((item.generation_id, item.generation.text))
    return [{"comparison": cid, "kind": comparisons[cid].kind,
             "prompt": comparisons[cid].prompt.messages or comparisons[cid].prompt.text, "candidates": candidates[cid]}
            for cid in ids if cid in comparisons and len(candidates.get(cid, [])) >= 2]


def judge_job_progress(*, job: JudgeJob, done: int) -> None:
    job.progress_done, job.heartbeat_at = done, timezone.now()
    job.save(update_fields=["progress_done", "heartbeat_at"])
    _publish(job)


def judge_job_finish(*, job: JudgeJob, error: str = "") -> None:
    job.status, job.error, job.finished_at = ("failed" if error else "succeeded"), error[:5000], timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    _publish(job)


def progress_message(job: JudgeJob) -> dict:
    return {"event": "judge.progress", "job": job.pk, "status": job.status, "done": job.progress_done,
            "total": job.progress_total, "error": job.error}


def _publish(job: JudgeJob) -> None:
    publish(events.group(job.project_id), progress_message(job))
