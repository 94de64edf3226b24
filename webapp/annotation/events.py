"""Live annotation events (group names from webapp/live_groups.py).

`annotation.project.<id>`, every member (annotators included); one message kind, also sent on connect:
    {"event": "annotation.counters", "pending": int, "done": int, "disputed": int}
pending = open comparisons; done = complete or adjudicated; disputed = waiting for a researcher.

`judging.project.<id>`, researchers only (job errors may quote model paths and tracebacks):
    {"event": "judge.progress", "job", "status", "done", "total", "error"}
    {"event": "judge.snapshot", "jobs": [<progress message>, ...]}   sent on connect"""
import time

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from webapp import live_groups
from webapp.projects.live import publish_now


group = live_groups.annotation_project
judging_group = live_groups.judging_project  # researchers only: judge-job progress and error text


def counters(project_id: int) -> dict:
    """The project's comparison counts by status: the sum of its maintained shards (ProjectCounter),
    sixteen rows however many comparisons it holds."""
    from webapp.annotation.models import ProjectCounter

    counts = ProjectCounter.objects.filter(project_id=project_id).aggregate(
        pending=Coalesce(Sum("pending"), 0), done=Coalesce(Sum("done"), 0), disputed=Coalesce(Sum("disputed"), 0))
    return {"event": "annotation.counters", **{k: int(v) for k, v in counts.items()}}


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
