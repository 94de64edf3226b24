"""Reads for annotation: the next comparison for an annotator (highest priority first, never one
they judged or skipped, never one already fully covered by others' judgements and live leases),
its blind payload in the annotator's own shown order, progress, disputes and snapshots."""
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from webapp.annotation import services
from webapp.annotation.models import (Assignment, Comparison, ComparisonItem, ComparisonStatus, Judgement,
                                      JudgementSource, PreferenceSnapshot, Skip)


def _count(queryset):
    return Coalesce(Subquery(queryset.order_by().values("comparison").annotate(n=Count("id")).values("n")), Value(0))


def _open_for(project, annotator):
    mine = Q(comparison=OuterRef("pk"), annotator=annotator)
    return (Comparison.objects.filter(project=project, status=ComparisonStatus.OPEN)
            .exclude(Exists(Judgement.objects.filter(mine))).exclude(Exists(Skip.objects.filter(mine))))


def comparison_next_for(*, project, annotator) -> Comparison | None:
    """The comparison this annotator should judge now, leased to them for a few minutes. Their own
    live lease comes first (a reload or an undo shows the same item); otherwise the best open item
    whose judgements plus others' live leases are still short of the overlap it needs. Rows being
    handed out concurrently are skipped (FOR UPDATE SKIP LOCKED), so two people never race for one slot."""
    now = timezone.now()
    mine = Assignment.objects.filter(annotator=annotator, expires_at__gt=now, comparison__project=project,
                                     comparison__status=ComparisonStatus.OPEN).values("comparison_id")
    held = _open_for(project, annotator).filter(pk__in=mine).select_related("prompt").order_by("-priority", "id").first()
    if held is not None:
        return held
    humans = Judgement.objects.filter(comparison=OuterRef("pk"), source=JudgementSource.HUMAN, is_adjudication=False)
    leases = Assignment.objects.filter(comparison=OuterRef("pk"), expires_at__gt=now).exclude(annotator=annotator)
    with transaction.atomic():
        candidate = (_open_for(project, annotator).annotate(judged=_count(humans), leased=_count(leases))
                     .filter(judged__lt=F("required_annotations") - F("leased")).order_by("-priority", "id")
                     .select_related("prompt").select_for_update(skip_locked=True, of=("self",)).first())
        if candidate is not None:
            with connection.cursor() as cursor:  # a lease is disposable: no need to wait for the disk
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            services.comparison_lease(comparison=candidate, annotator=annotator)
    return candidate


def comparison_payload(*, comparison: Comparison, annotator) -> dict:
    """What the annotation page shows: the prompt and the candidates, blind (no model names), in this
    annotator's shown order, labelled A, B, C ... in that order."""
    items = list(ComparisonItem.objects.filter(comparison=comparison).select_related("generation"))
    by_id = {item.generation_id: item.generation for item in items}
    order = services.shown_order(comparison.pk, annotator.pk, sorted(by_id))
    prompt = comparison.prompt
    return {
        "id": comparison.pk, "kind": comparison.kind,
        "prompt": {"text": prompt.text, "messages": prompt.messages},
        "candidates": [{"id": gid, "label": chr(ord("A") + i), "text": by_id[gid].text} for i, gid in enumerate(order)],
    }


_PROGRESS_SQL = f"""
SELECT COUNT(j.id),
       COUNT(j.id) FILTER (WHERE c.status = %(open)s),
       COUNT(j.id) FILTER (WHERE NOT j.is_adjudication AND j.created_at >= %(since)s),
       (SELECT COUNT(*) FROM {Skip._meta.db_table} s JOIN {Comparison._meta.db_table} sc ON sc.id = s.comparison_id
         WHERE sc.project_id = %(project)s AND s.annotator_id = %(annotator)s AND sc.status = %(open)s)
  FROM {Judgement._meta.db_table} j JOIN {Comparison._meta.db_table} c ON c.id = j.comparison_id
 WHERE c.project_id = %(project)s AND j.annotator_id = %(annotator)s"""


def annotator_progress(*, project, annotator, pending: int) -> dict:
    """mine: judgements given; available: open comparisons they have neither judged nor skipped
    (pending minus those, counted from their own rows: cheap however long the queue is);
    can_undo: whether they have a judgement recent enough to undo. One SQL statement: it runs on
    every next-item and submit, where the ORM's query building cost more than the query."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS_SQL, {"open": ComparisonStatus.OPEN.value, "since": timezone.now() - services.UNDO_WINDOW,
                                       "project": project.pk, "annotator": annotator.pk})
        total, judged_open, undoable, skipped = cursor.fetchone()
    return {"mine": total, "available": max(0, pending - judged_open - skipped), "can_undo": undoable > 0}


def disputed_comparisons(*, project):
    return (Comparison.objects.filter(project=project, status=ComparisonStatus.DISPUTED)
            .select_related("prompt").prefetch_related("items__generation__model_version", "judgements__annotator")
            .order_by("-priority", "id"))


def comparisons_overview(*, project):
    return Comparison.objects.filter(project=project).values("source", "kind", "status").annotate(n=Count("id")).order_by("source", "kind", "status")


def snapshots_for(*, project):
    return PreferenceSnapshot.objects.filter(project=project).select_related("created_by")
