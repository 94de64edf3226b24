"""Live annotation counters. One group per project, `annotation-<project id>`; one message kind,
also sent on connect:
    {"event": "annotation.counters", "pending": int, "done": int, "disputed": int}
pending = open comparisons; done = complete or adjudicated; disputed = waiting for a researcher."""
from django.db import transaction
from django.db.models import Count, Q

from webapp.projects.live import publish_now


def group(project_id: int) -> str:
    return f"annotation-{project_id}"


def counters(project_id: int) -> dict:
    from webapp.annotation.models import Comparison, ComparisonStatus

    counts = Comparison.objects.filter(project_id=project_id).aggregate(
        pending=Count("id", filter=Q(status=ComparisonStatus.OPEN)),
        done=Count("id", filter=Q(status__in=[ComparisonStatus.COMPLETE, ComparisonStatus.ADJUDICATED])),
        disputed=Count("id", filter=Q(status=ComparisonStatus.DISPUTED)))
    return {"event": "annotation.counters", **counts}


def counters_changed(project_id: int) -> None:
    """Publishes fresh counters once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish_now(group(project_id), counters(project_id)))
