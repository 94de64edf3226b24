"""Live annotation events (group names from webapp/live_groups.py).

`annotation.project.<id>`, every member (annotators included); one message kind, also sent on connect:
    {"event": "annotation.counters", "pending": int, "done": int, "disputed": int}
pending = open comparisons; done = complete or adjudicated; disputed = waiting for a researcher.

`judging.project.<id>`, researchers only (job errors may quote model paths and tracebacks):
    {"event": "judge.progress", "job", "status", "done", "total", "error"}
    {"event": "judge.snapshot", "jobs": [<progress message>, ...]}   sent on connect"""
import time

from django.db import transaction
from django.db.models import Count, Q

from webapp import live_groups
from webapp.projects.live import publish_now


group = live_groups.annotation_project
judging_group = live_groups.judging_project  # researchers only: judge-job progress and error text


def counters(project_id: int) -> dict:
    from webapp.annotation.models import Comparison, ComparisonStatus

    counts = Comparison.objects.filter(project_id=project_id).aggregate(
        pending=Count("id", filter=Q(status=ComparisonStatus.OPEN)),
        done=Count("id", filter=Q(status__in=[ComparisonStatus.COMPLETE, ComparisonStatus.ADJUDICATED])),
        disputed=Count("id", filter=Q(status=ComparisonStatus.DISPUTED)))
    return {"event": "annotation.counters", **counts}


_recent: dict = {}  # project id -> (monotonic time, counters): see counters_recent


def counters_recent(project_id: int, max_age: float = 1.0) -> dict:
    """Counters at most `max_age` seconds old, for the annotation API's payloads: with fifty people
    asking for their next item, one count a second is plenty (the socket pushes every change)."""
    now = time.monotonic()
    cached = _recent.get(project_id)
    if cached is None or now - cached[0] > max_age:
        cached = _recent[project_id] = (now, counters(project_id))
    return cached[1]


def counters_changed(project_id: int) -> None:
    """Publishes fresh counters once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish_now(group(project_id), counters(project_id)))
