"""Default-queue annotation work: writing a frozen preference snapshot's export files (TRL JSONL, an
HF datasets directory, LLaMA-Factory and Axolotl formats; webapp/annotation/exports.py) so downloads are ready without making a browser wait."""
from celery import shared_task

from webapp.annotation.models import PreferenceSnapshot
from webapp.annotation.exports import snapshot_export


@shared_task(name="workers.tasks.annotation.export_snapshot")
def export_snapshot(snapshot_id: int) -> str:
    snapshot = PreferenceSnapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:  # deleted before the worker got to it
        return "gone"
    return str(snapshot_export(snapshot))
