"""Reads for annotation: the next comparison for an annotator (highest priority first, never one
they judged or skipped, never one already fully covered by others' judgements and live leases),
its blind payload in the annotator's own shown order, progress, disputes and snapshots.

The next-item path is the application's hot path (every annotator asks for it after each verdict),
so it is a few hand-written SQL statements rather than ORM querysets; docs/benchmarks.md has the
profile that led here."""
import json

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from webapp.annotation import services
from webapp.annotation.models import (Assignment, Comparison, ComparisonItem, ComparisonStatus, Judgement,
                                      PreferenceSnapshot, Skip, Verdict)
from webapp.catalog.models import Prompt
from webapp.generation.models import Generation

_T = {"c": Comparison._meta.db_table, "a": Assignment._meta.db_table, "j": Judgement._meta.db_table,
      "s": Skip._meta.db_table, "i": ComparisonItem._meta.db_table, "g": Generation._meta.db_table, "p": Prompt._meta.db_table}
_NOT_MINE = """NOT EXISTS (SELECT 1 FROM {j} mj WHERE mj.comparison_id = c.id AND mj.annotator_id = %(me)s)
   AND NOT EXISTS (SELECT 1 FROM {s} ms WHERE ms.comparison_id = c.id AND ms.annotator_id = %(me)s)""".format(**_T)
# Human judgements (adjudications aside) plus other people's live leases: the slots already taken.
_TAKEN = """(SELECT COUNT(*) FROM {j} hj WHERE hj.comparison_id = c.id AND hj.source = 'human' AND NOT hj.is_adjudication)
     + (SELECT COUNT(*) FROM {a} la WHERE la.comparison_id = c.id AND la.expires_at > clock_timestamp()
                                     AND la.annotator_id <> %(me)s)""".format(**_T)

# Their own live lease (a reload or an undo shows the same item), renewed in the same statement.
# The comparison row is locked first, as every lease writer does, so a lease that another
# annotator's recount has just found expired is not brought back to life behind its back.
_HELD_RENEW = f"""
WITH held AS (
  SELECT c.id FROM {_T['c']} c JOIN {_T['a']} a ON a.comparison_id = c.id
   WHERE a.annotator_id = %(me)s AND a.expires_at > clock_timestamp() AND c.project_id = %(project)s
     AND c.status = 'open' AND {_NOT_MINE}
   ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE OF c)
UPDATE {_T['a']} a SET expires_at = clock_timestamp() + %(lease)s FROM held
 WHERE a.comparison_id = held.id AND a.annotator_id = %(me)s AND a.expires_at > clock_timestamp()
RETURNING a.comparison_id"""

# The best open comparison with a free slot, walking the queue index; rows being handed out right
# now are skipped. Its snapshot predates the lock, so the slot is counted again below.
_CANDIDATE = f"""
SELECT c.id FROM {_T['c']} c
 WHERE c.project_id = %(project)s AND c.status = 'open' AND {_NOT_MINE}
   AND {_TAKEN} < c.required_annotations
 ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED"""

# Recount under the row lock, in a new statement (a new snapshot under READ COMMITTED: it sees every
# lease committed before the lock was granted), and lease only if a slot is still free.
_LEASE = f"""
INSERT INTO {_T['a']} (comparison_id, annotator_id, expires_at, created_at)
SELECT c.id, %(me)s, clock_timestamp() + %(lease)s, clock_timestamp() FROM {_T['c']} c
 WHERE c.id = %(id)s AND c.status = 'open' AND {_TAKEN} < c.required_annotations
ON CONFLICT (comparison_id, annotator_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
RETURNING comparison_id"""


def comparison_next_id_for(*, project, annotator) -> int | None:
    """The id of the comparison this annotator should judge now, leased (or re-leased) to them for
    a few minutes: their own live lease first, otherwise the best open item whose judgements plus
    others' live leases are still short of the overlap it needs. Every lease is written while
    holding the comparison's row lock and after recounting, so twenty people asking at once never
    fill more slots than the comparison has."""
    params = {"me": annotator.pk, "project": project.pk, "lease": services.LEASE}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")  # a lease is disposable: no need to wait for the disk
        cursor.execute(_HELD_RENEW, params)
        row = cursor.fetchone()
        for _ in range(20):  # a failed recount means someone else took the slot meanwhile: take the next one
            if row is not None:
                return row[0]
            cursor.execute(_CANDIDATE, params)
            candidate = cursor.fetchone()
            if candidate is None:
                return None
            cursor.execute(_LEASE, {**params, "id": candidate[0]})
            row = cursor.fetchone()
    return None


def comparison_next_for(*, project, annotator) -> Comparison | None:
    """comparison_next_id_for, as a Comparison (with its prompt) for callers outside the hot path."""
    comparison_id = comparison_next_id_for(project=project, annotator=annotator)
    return None if comparison_id is None else Comparison.objects.select_related("prompt").get(pk=comparison_id)


_STATE_SQL = f"""
SELECT (SELECT COUNT(*) FROM {_T['j']} j JOIN {_T['c']} c ON c.id = j.comparison_id
         WHERE c.project_id = %(project)s AND j.annotator_id = %(me)s),
       (SELECT COUNT(*) FROM {_T['j']} j JOIN {_T['c']} c ON c.id = j.comparison_id
         WHERE c.project_id = %(project)s AND j.annotator_id = %(me)s AND c.status = 'open'),
       EXISTS (SELECT 1 FROM {_T['j']} j JOIN {_T['c']} c ON c.id = j.comparison_id
         WHERE c.project_id = %(project)s AND j.annotator_id = %(me)s AND NOT j.is_adjudication AND j.created_at >= %(since)s),
       (SELECT COUNT(*) FROM {_T['s']} s JOIN {_T['c']} c ON c.id = s.comparison_id
         WHERE c.project_id = %(project)s AND s.annotator_id = %(me)s AND c.status = 'open'),
       c.kind, p.text, p.messages,
       (SELECT json_agg(json_build_array(i.generation_id, g.text)) FROM {_T['i']} i JOIN {_T['g']} g ON g.id = i.generation_id
         WHERE i.comparison_id = c.id)
  FROM (SELECT 1) one
  LEFT JOIN {_T['c']} c ON c.id = %(id)s AND c.project_id = %(project)s
  LEFT JOIN {_T['p']} p ON p.id = c.prompt_id"""


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def annotation_state(*, project, annotator, comparison_id: int | None, pending: int) -> dict:
    """What every annotation API answer carries, in one SQL statement: the comparison's blind
    payload (or None) and the annotator's progress.

    comparison: the prompt and the candidates, blind (no model names), in this annotator's shown
    order, labelled A, B, C ... in that order. progress.mine: judgements given; progress.available:
    open comparisons they have neither judged nor skipped (pending minus those, counted from their
    own rows: cheap however long the queue is), and 0 when the queue has nothing for them now, the
    rest being on other people's screens (progress.waiting) until those leases end or are judged;
    can_undo: whether they have a judgement recent enough to undo."""
    with connection.cursor() as cursor:
        cursor.execute(_STATE_SQL, {"project": project.pk, "me": annotator.pk, "id": comparison_id,
                                    "since": timezone.now() - services.UNDO_WINDOW})
        total, judged_open, undoable, skipped, kind, prompt_text, messages, items = cursor.fetchone()
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
