"""Default-queue annotation work: writing a frozen preference snapshot's export files (TRL JSONL, an
HF datasets directory, LLaMA-Factory and Axolotl formats; webapp/annotation/exports.py) so downloads are ready without making a browser wait,
and refreshing a project's agreement figures for the quality page (webapp/annotation/quality.py)."""
from celery import shared_task

from webapp.annotation.models import PreferenceSnapshot
from webapp.annotation.exports import snapshot_export
from webapp.annotation.quality import quality_refresh
from webapp.annotation.snapshot_jobs import JOBS as FREEZE_JOBS
from webapp.annotation.snapshot_jobs import snapshot_freeze_run
from webapp.projects.models import Project


@shared_task(name="workers.tasks.annotation.export_snapshot")
def export_snapshot(snapshot_id: int) -> str:
    snapshot = PreferenceSnapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:  # deleted before the worker got to it
        return "gone"
    return str(snapshot_export(snapshot))


@shared_task(name="workers.tasks.annotation.refresh_quality")
def refresh_quality(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return quality_refresh(project=project).judgements


@shared_task(name="workers.tasks.annotation.freeze_snapshot")
def freeze_snapshot(freeze_id: int) -> str:
    return FREEZE_JOBS.run(freeze_id, lambda job, attempt: snapshot_freeze_run(job=job, attempt=attempt))
