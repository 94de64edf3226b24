"""Reads for annotation: the next comparison for an annotator (highest priority first, never one
they judged or skipped, never one already fully covered by others' judgements and live leases),
its blind payload in the annotator's own shown order, progress, disputes and snapshots.

The next-item path is the application's hot path (every annotator asks for it after each verdict),
so it is a few hand-written SQL statements rather than ORM querysets; docs/benchmarks.md has the
profile that led here."""
import json

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from webapp.annotation import services
from webapp.annotation.models import (AnnotatorProgress, Comparison, ComparisonItem, ComparisonStatus, Judgement,
                                      PreferenceSnapshot, Skip, Verdict)
from webapp.catalog.models import Prompt
from webapp.generation.models import Generation

_T = {"c": Comparison._meta.db_table, "j": Judgement._meta.db_table, "s": Skip._meta.db_table, "ap": AnnotatorProgress._meta.db_table,
      "i": ComparisonItem._meta.db_table, "g": Generation._meta.db_table, "p": Prompt._meta.db_table}

# The lease itself is the PostgreSQL function annotation_next_lease (migration 0009, where its
# statements are explained): one round trip instead of six, the same locks and recounts.
_NEXT_ID = "annotation_next_lease(%(project)s, %(me)s, %(lease)s)"


def comparison_next_id_for(*, project, annotator) -> int | None:
    """The id of the comparison this annotator should judge now, leased (or re-leased) to them for
    a few minutes: their own live lease first, otherwise the best open item whose judgements plus
    others' live leases are still short of the overlap it needs. Every lease is written while
    holding the comparison's row lock and after recounting, so twenty people asking at once never
    fill more slots than the comparison has."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_NEXT_ID}", {"me": annotator.pk, "project": project.pk, "lease": services.LEASE})
        return cursor.fetchone()[0]


def comparison_next_for(*, project, annotator) -> Comparison | None:
    """comparison_next_id_for, as a Comparison (with its prompt) for callers outside the hot path."""
    comparison_id = comparison_next_id_for(project=project, annotator=annotator)
    return None if comparison_id is None else Comparison.objects.select_related("prompt").get(pk=comparison_id)


# The progress figures are the annotator's maintained row (AnnotatorProgress, kept by triggers in
# the judgement's own transaction), never a recount: the same cost at 1M comparisons as at 10k.
# "can undo" is their latest judgement in the project, newest first down the (annotator, -created_at)
# index: an EXISTS over "the last 30 minutes" let the planner pick a sequential scan of every
# judgement (a judge job's fresh verdicts made recent rows look common), 0.4 s at 1M (docs/benchmarks.md).
# {id}: the comparison's id, or the lease function (the next item, leased in the same round trip:
# MATERIALIZED runs it exactly once; what it writes, a lease, is nothing this statement reads).
_STATE_SQL = f"""
WITH one AS MATERIALIZED (SELECT {{id}}::bigint AS id),
     mine AS (SELECT judged, judged_open, skipped_open FROM {_T['ap']} WHERE project_id = %(project)s AND annotator_id = %(me)s)
SELECT one.id, coalesce((SELECT judged FROM mine), 0), coalesce((SELECT judged_open FROM mine), 0),
       coalesce((SELECT j.created_at FROM {_T['j']} j JOIN {_T['c']} c ON c.id = j.comparison_id
         WHERE c.project_id = %(project)s AND j.annotator_id = %(me)s AND NOT j.is_adjudication
         ORDER BY j.created_at DESC LIMIT 1) >= %(since)s, false),
       coalesce((SELECT skipped_open FROM mine), 0),
       c.kind, p.text, p.messages,
       (SELECT json_agg(json_build_array(i.generation_id, g.text)) FROM {_T['i']} i JOIN {_T['g']} g ON g.id = i.generation_id
         WHERE i.comparison_id = c.id)
  FROM one
  LEFT JOIN {_T['c']} c ON c.id = one.id AND c.project_id = %(project)s
  LEFT JOIN {_T['p']} p ON p.id = c.prompt_id"""


_STATE_SQL_ID, _STATE_SQL_NEXT = _STATE_SQL.format(id="%(id)s"), _STATE_SQL.format(id=_NEXT_ID)


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def annotation_state(*, project, annotator, comparison_id: int | None = None, pending: int, lease_next: bool = False) -> dict:
    """What every annotation API answer carries, in one SQL statement: the comparison's blind
    payload (or None) and the annotator's progress.

    comparison: the prompt and the candidates, blind (no model names), in this annotator's shown
    order, labelled A, B, C ... in that order. progress.mine: judgements given; progress.available:
    open comparisons they have neither judged nor skipped (pending minus those, counted from their
    own rows: cheap however long the queue is), and 0 when the queue has nothing for them now, the
    rest being on other people's screens (progress.waiting) until those leases end or are judged;
    can_undo: whether they have a judgement recent enough to undo.

    lease_next: the comparison is the next one for this annotator, leased to them as by
    comparison_next_id_for, in the same statement (the next-item API: one database round trip)."""
    sql = _STATE_SQL_NEXT if lease_next else _STATE_SQL_ID
    with connection.cursor() as cursor:
        cursor.execute(sql, {"project": project.pk, "me": annotator.pk, "id": comparison_id, "lease": services.LEASE,
                             "since": timezone.now() - services.UNDO_WINDOW})
        comparison_id, total, judged_open, undoable, skipped, kind, prompt_text, messages, items = cursor.fetchone()
    left = max(0, pending - judged_open - skipped)
    payload = None
    if kind is not None:
        texts = dict(_json(items))
        order = services.shown_order(comparison_id, annotator.pk, sorted(texts))
        payload = {"id": comparison_id, "kind": kind, "prompt": {"text": prompt_text, "messages": _json(messages)},
                   "candidates": [{"id": gid, "label": chr(ord("A") + i), "text": texts[gid]} for i, gid in enumerate(order)]}
    progress = {"mine": total, "available": max(left, 1)} if payload else {"mine": total, "available": 0, "waiting": left}
    return {"comparison": payload, "progress": progress, "can_undo": undoable}


def comparison_payload(*, comparison: Comparison, annotator) -> dict:
    """The blind payload of one comparison (see annotation_state)."""
    return annotation_state(project=comparison.project, annotator=annotator, comparison_id=comparison.pk, pending=0)["comparison"]


def disputed_comparisons(*, project, limit: int = 50) -> list[Comparison]:
    """The disputes queue. Each judgement gets `in_columns`: its verdict in the terms of the page's
    columns (1, 2 ... in canonical position order, each labelled by its model), never in the
    letters that annotator happened to be shown, nor as raw generation ids."""
    comparisons = list(Comparison.objects.filter(project=project, status=ComparisonStatus.DISPUTED)
                       .select_related("prompt").prefetch_related("items__generation__model_version", "judgements__annotator")
                       .order_by("-priority", "id")[:limit])
    for comparison in comparisons:
        items = sorted(comparison.items.all(), key=lambda item: item.position)
        for judgement in comparison.judgements.all():
            judgement.in_columns = verdict_in_columns(judgement, items)
    return comparisons


def verdict_in_columns(judgement: Judgement, items: list[ComparisonItem]) -> str:
    """'1 (teacher-7b) is better', 'tie', 'both bad', or a ranking such as '3 > 1 = 2 > 4'."""
    column = {item.generation_id: index + 1 for index, item in enumerate(items)}
    if judgement.verdict == Verdict.BOTH_BAD:
        return "both bad"
    if judgement.verdict == Verdict.TIE:
        return "tie"
    if judgement.verdict in (Verdict.A, Verdict.B) and len(items) == 2:
        winner = items[0] if judgement.verdict == Verdict.A else items[1]
        return f"{column[winner.generation_id]} ({winner.generation.model_version.name}) is better"
    groups = [" = ".join(str(column.get(g, "?")) for g in sorted(group, key=lambda g: column.get(g, 0))) for group in judgement.ranking]
    return " > ".join(groups) or judgement.get_verdict_display()


def comparisons_overview(*, project):
    return Comparison.objects.filter(project=project).values("source", "kind", "status").annotate(n=Count("id")).order_by("source", "kind", "status")


def snapshots_for(*, project):
    return PreferenceSnapshot.objects.filter(project=project).select_related("created_by")


PAIRS_PER_PAGE = 25


def pairs_page(*, snapshot, after=None, before=None, last: bool = False) -> dict:
    """One page of a snapshot's pairs by keyset on the pair id (after=<id>: the next page, before=<id>:
    the previous one, last: the end), so any page of a million pairs costs one index range scan.
    {"pairs", "has_previous", "has_next", "first_id", "last_id"}."""
    pairs = snapshot.pairs.all()
    after, before = _id_or_none(after), _id_or_none(before)
    if before is not None or last:
        rows = list((pairs.filter(pk__lt=before) if before is not None else pairs).order_by("-id")[:PAIRS_PER_PAGE + 1])[::-1]
        has_previous, rows = len(rows) > PAIRS_PER_PAGE, rows[-PAIRS_PER_PAGE:]
        has_next = before is not None
    else:
        rows = list((pairs.filter(pk__gt=after) if after is not None else pairs).order_by("id")[:PAIRS_PER_PAGE + 1])
        has_next, rows = len(rows) > PAIRS_PER_PAGE, rows[:PAIRS_PER_PAGE]
        has_previous = after is not None
    return {"pairs": rows, "has_previous": has_previous and bool(rows), "has_next": has_next and bool(rows),
            "first_id": rows[0].pk if rows else None, "last_id": rows[-1].pk if rows else None}


def _id_or_none(value):
    try:
        return int(value) if value not in (None, "") and 0 < int(value) < 2**63 else None
    except (TypeError, ValueError):
        return None
