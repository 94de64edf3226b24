"""Writes for annotation: building comparisons from generations, recording and undoing human
judgements (one per annotator and comparison, safe under double submission: the comparison row is
locked and the unique constraint has the last word), skips, teacher-judge verdicts, adjudication of
disputes, and the comparison's status that follows from its judgements."""
import json
import random
from collections import defaultdict
from datetime import timedelta
from types import SimpleNamespace

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from webapp.annotation import events
from webapp.annotation.models import (AnnotatorProgress, Assignment, Comparison, ComparisonItem, ComparisonKind, ComparisonSource,
                                      ComparisonStatus, Judgement, JudgementSource, Skip, Verdict)

LEASE = timedelta(minutes=5)
UNDO_WINDOW = timedelta(minutes=30)
MAX_KWAY = 6
MAX_RATIONALE_CHARS = 5000  # a paragraph or two; longer is refused, not cut (the page's field says so too)
FLAGS = ("wrong", "unsafe", "off-topic", "unsure")  # the annotation page offers these, on Shift+1..4


def comparisons_build(*, project, generations, mode: str, required_annotations: int = 1, kway_size: int = 4,
                      priority: float = 0.0, limit: int | None = None) -> list[Comparison]:
    """Groups `generations` (a queryset) by prompt and makes comparisons:
    teacher_student pairs the teacher's sample i with each student's sample i; student_student pairs
    a student's distinct samples (0,1), (2,3) ...; kway puts up to `kway_size` distinct answers of one
    prompt in one ranking. Answers with identical text are never compared with each other; a
    comparison with the same generations as an existing one is not made twice."""
    if required_annotations < 1:
        raise ValidationError("Each comparison needs at least one annotator.")
    if mode not in (ComparisonSource.TEACHER_STUDENT, ComparisonSource.STUDENT_STUDENT, ComparisonSource.KWAY):
        raise ValidationError(f"Unknown comparison mode {mode!r}.")
    by_prompt = defaultdict(list)
    for generation in generations.select_related("model_version").order_by("prompt_id", "model_version_id", "sample_index"):
        by_prompt[generation.prompt_id].append(generation)
    existing = _existing_sets(project, list(by_prompt))
    groups = [g for prompt_id in by_prompt for g in _groups(by_prompt[prompt_id], mode, kway_size)]
    groups = [g for g in groups if frozenset(x.pk for x in g) not in existing][:limit]
    kind = ComparisonKind.KWAY if mode == ComparisonSource.KWAY else ComparisonKind.PAIRWISE
    planned = sorted(((build_key(g), g) for g in groups), key=lambda kg: kg[0])  # one lock order for racing builds
    with transaction.atomic():
        made = _insert_new_sets([Comparison(project=project, prompt_id=g[0].prompt_id, kind=kind, source=mode, build_key=key,
                                            required_annotations=required_annotations, priority=priority)
                                 for key, g in planned])
        comparisons = [made[key] for key, _ in planned if key in made]
        ComparisonItem.objects.bulk_create([ComparisonItem(comparison=made[key], generation=x, position=i)
                                            for key, g in planned if key in made for i, x in enumerate(g)])
        if comparisons:
            events.counters_changed(project.pk)
    return comparisons


def build_key(generations) -> str:
    """A built comparison's generation set, as the unique build_key column holds it."""
    return ",".join(str(pk) for pk in sorted(g.pk for g in generations))


def _insert_new_sets(comparisons: list, batch: int = 500) -> dict:
    """INSERT ... ON CONFLICT (project, build_key) DO NOTHING: the builds that race (three clicks on
    "Build comparisons") each store a generation set once; a set another build holds waits for that
    build's commit and is then skipped. Returns {build_key: comparison} for the rows this call made."""
    fields = [f for f in Comparison._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    made = {}
    for start in range(0, len(comparisons), batch):
        chunk = comparisons[start:start + batch]
        params = [f.get_db_prep_save(f.pre_save(c, True), connection) for c in chunk for f in fields]
        rows = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {Comparison._meta.db_table} ({columns}) VALUES {rows} "
                           "ON CONFLICT (project_id, build_key) WHERE build_key <> '' DO NOTHING RETURNING id, build_key",
                           params)
            ids = dict((key, pk) for pk, key in cursor.fetchall())
        for c in chunk:
            if c.build_key in ids:
                c.pk, c._state.adding, c._state.db = ids[c.build_key], False, connection.alias
                made[c.build_key] = c
    return made


def _existing_sets(project, prompt_ids) -> set:
    sets = defaultdict(set)
    for cid, gid in ComparisonItem.objects.filter(comparison__project=project, comparison__prompt_id__in=prompt_ids) \
            .values_list("comparison_id", "generation_id"):
        sets[cid].add(gid)
    return {frozenset(s) for s in sets.values()}


def _distinct(gens):
    seen, out = set(), []
    for g in gens:
        if g.text.strip() not in seen:
            seen.add(g.text.strip())
            out.append(g)
    return out


def _groups(gens, mode, kway_size):
    if mode == ComparisonSource.KWAY:
        group = _distinct(gens)
        random.Random(gens[0].prompt_id).shuffle(group)  # mix models, so a k-way is not all one model
        return [group[:min(kway_size, MAX_KWAY)]] if len(group) >= 2 else []
    teachers = [g for g in gens if g.model_version.role == "teacher"]
    students = defaultdict(list)
    for g in gens:
        if g.model_version.role != "teacher":
            students[g.model_version_id].append(g)
    if mode == ComparisonSource.TEACHER_STUDENT:
        return [[t, s] for samples in students.values() for t, s in zip(teachers, samples) if t.text.strip() != s.text.strip()]
    pairs = []
    for samples in students.values():
        distinct = _distinct(samples)
        pairs += [[distinct[i], distinct[i + 1]] for i in range(0, len(distinct) - 1, 2)]
    return pairs


def rationale_check(rationale: str) -> None:
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise ValidationError(f"The rationale is {len(rationale):,} characters, over the {MAX_RATIONALE_CHARS:,} limit; shorten it.")


def ranking_for(comparison_ids: list[int], ranking, *, both_bad: bool = False) -> list[list[int]]:
    """Checks that `ranking` (groups of generation ids, best first; ties share a group) covers each
    of the comparison's generations exactly once, and returns it with plain ints."""
    def _id(x):
        return isinstance(x, int) and not isinstance(x, bool)

    if not isinstance(ranking, (list, tuple)) or not all(isinstance(g, (list, tuple)) and all(map(_id, g)) for g in ranking):
        raise ValidationError("ranking must be a list of lists of generation ids")
    groups = [sorted(int(x) for x in group) for group in ranking]
    flat = [x for group in groups for x in group]
    if sorted(flat) != sorted(comparison_ids) or any(not g for g in groups):
        raise ValidationError("ranking must place every candidate of this comparison exactly once")
    if both_bad and len(groups) != 1:
        raise ValidationError("'both bad' puts all candidates in one group")
    return groups


def verdict_of(positions: dict, groups: list, *, both_bad: bool, kind: str) -> str:
    """Canonical verdict: 'a' means the candidate at position 0 is better (not the one shown first)."""
    if kind == ComparisonKind.KWAY:
        return Verdict.RANKING
    if both_bad:
        return Verdict.BOTH_BAD
    if len(groups) == 1:
        return Verdict.TIE
    return Verdict.A if positions[groups[0][0]] == 0 else Verdict.B


def shown_order(comparison_id: int, annotator_id: int, generation_ids: list[int]) -> list[int]:
    """The per-annotator random order, reproducible so a reload shows the same layout."""
    order = list(generation_ids)
    random.Random(f"{comparison_id}:{annotator_id}").shuffle(order)
    return order


def judgement_record(*, comparison: Comparison, annotator, ranking, both_bad: bool = False, rationale: str = "",
                     flags=(), time_spent_ms=None) -> tuple[Judgement, bool]:
    """Stores one human judgement; returns (judgement, created). A repeated submission of the same
    verdict returns the first one; a different verdict for an already judged item is refused."""
    rationale_check(rationale)
    return _judgement_write(comparison.pk, None, annotator, ranking, both_bad=both_bad, rationale=rationale, flags=flags,
                            time_spent_ms=time_spent_ms)


def judgement_submit(*, project, comparison_id: int, annotator, ranking, both_bad: bool = False, rationale: str = "",
                     flags=(), time_spent_ms=None) -> tuple[Judgement, bool] | None:
    """judgement_record for a submission through the annotation queue: None (and nothing written)
    unless the comparison was offered to this annotator (see comparison_offered)."""
    rationale_check(rationale)
    return _judgement_write(comparison_id, project.pk, annotator, ranking, both_bad=both_bad, rationale=rationale, flags=flags,
                            time_spent_ms=time_spent_ms)


_T = {"c": Comparison._meta.db_table, "a": Assignment._meta.db_table, "j": Judgement._meta.db_table,
      "s": Skip._meta.db_table, "i": ComparisonItem._meta.db_table, "ap": AnnotatorProgress._meta.db_table}
_LOCKED_FIELDS = ["id", "project_id", "kind", "required_annotations", "status", "evaluation_id"]  # model order: Model.from_db
# The comparison locked, with its candidates' positions (the hot path: every verdict of every
# annotator). A statement's snapshot predates the lock it waited for, so what others may have
# written meanwhile (their judgement on a double submit, a lease) is read by the next statement.
_LOCK_SQL = f"""
SELECT {", ".join("c." + f for f in _LOCKED_FIELDS)},
       (SELECT json_agg(json_build_array(i.generation_id, i.position)) FROM {_T['i']} i WHERE i.comparison_id = c.id)
  FROM {_T['c']} c WHERE c.id = %(id)s AND (%(project)s::bigint IS NULL OR c.project_id = %(project)s) FOR UPDATE OF c"""
# The maintained progress rows this write may change (AnnotatorProgress, migration 0012: theirs, and
# everyone's who judged or skipped the comparison, should its status change), locked in annotator
# order right after the comparison row: two verdicts closing two comparisons that the same two
# people judged then wait for each other instead of deadlocking in the triggers.
_PROGRESS_LOCK = f"""
(SELECT count(*) FROM (SELECT 1 FROM {_T['ap']} p
   WHERE p.project_id = (SELECT project_id FROM {_T['c']} WHERE id = %(id)s)
     AND p.annotator_id IN (SELECT %(me)s::bigint UNION SELECT annotator_id FROM {_T['j']} WHERE comparison_id = %(id)s
                            UNION SELECT annotator_id FROM {_T['s']} WHERE comparison_id = %(id)s)
   ORDER BY p.annotator_id FOR UPDATE OF p) locked)"""
# Their judgement if any, and whether the queue offered them the comparison (see comparison_offered).
_MINE_SQL = f"""
SELECT (SELECT j.id FROM {_T['j']} j WHERE j.comparison_id = %(id)s AND j.annotator_id = %(me)s),
       (%(project)s::bigint IS NULL
        OR EXISTS (SELECT 1 FROM {_T['a']} a WHERE a.comparison_id = %(id)s AND a.annotator_id = %(me)s)
        OR EXISTS (SELECT 1 FROM {_T['j']} j WHERE j.comparison_id = %(id)s AND j.annotator_id = %(me)s)
        OR EXISTS (SELECT 1 FROM {_T['s']} s WHERE s.comparison_id = %(id)s AND s.annotator_id = %(me)s)),
       {_PROGRESS_LOCK}"""
# The judgement inserted, the lease done with, and the comparison's other human verdicts (with this
# one, they decide its status), in one statement: its snapshot predates the insert, so the new row
# is not among the others. Columns: every concrete field but the id, in model order.
_INSERT_FIELDS = [f for f in Judgement._meta.concrete_fields if not f.primary_key]
_WRITE_SQL = f"""
WITH ins AS (INSERT INTO {_T['j']} ({", ".join(f'"{f.column}"' for f in _INSERT_FIELDS)})
             VALUES ({", ".join(["%s"] * len(_INSERT_FIELDS))}) RETURNING id),
     done AS (DELETE FROM {_T['a']} WHERE comparison_id = %s AND annotator_id = %s)
SELECT true, (SELECT id FROM ins), NULL, NULL, NULL
UNION ALL
SELECT false, id, verdict, ranking, is_adjudication FROM {_T['j']} WHERE comparison_id = %s AND source = 'human'"""


def progress_lock(*, comparison_id: int, annotator_id: int) -> None:
    """Takes the progress-row locks a write on this (already locked) comparison may need, in the
    one order every writer uses (see _PROGRESS_LOCK)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_PROGRESS_LOCK}", {"id": comparison_id, "me": annotator_id})


def _judgement_write(comparison_id, project_id, annotator, ranking, *, both_bad, rationale, flags, time_spent_ms):
    with transaction.atomic(), connection.cursor() as cursor:
        params = {"id": comparison_id, "project": project_id, "me": annotator.pk}
        cursor.execute(_LOCK_SQL, params)
        row = cursor.fetchone()
        if row is not None:
            cursor.execute(_MINE_SQL, params)
            existing_id, offered, _ = cursor.fetchone()
        if row is None or not offered:
            if project_id is None:
                raise Comparison.DoesNotExist(f"comparison {comparison_id} does not exist")
            return None
        locked = Comparison.from_db(connection.alias, _LOCKED_FIELDS, row[:-1])
        positions = dict(_json(row[-1]) or [])
        groups = ranking_for(list(positions), ranking, both_bad=both_bad)
        verdict = verdict_of(positions, groups, both_bad=both_bad, kind=locked.kind)
        if existing_id is not None:
            existing = Judgement.objects.get(pk=existing_id)
            if existing.verdict != verdict or existing.ranking != groups:
                raise ValidationError("You already judged this comparison differently; undo it first to change it.")
            return existing, False
        if locked.status == ComparisonStatus.ADJUDICATED:
            raise ValidationError("This comparison was adjudicated meanwhile; it needs no more judgements.")
        judgement = Judgement(
            comparison=locked, source=JudgementSource.HUMAN, annotator=annotator, verdict=verdict, ranking=groups,
            shown_order=shown_order(locked.pk, annotator.pk, sorted(positions)), rationale=rationale.strip()[:5000],
            flags=sorted({f for f in flags if f in FLAGS}), time_spent_ms=time_spent_ms)
        others = _judgement_insert(cursor, judgement)
        _status_refresh(locked, [judgement, *others])
    return judgement, True


def _judgement_insert(cursor, judgement: Judgement) -> list:
    """Judgement.save() for a new human judgement, in the statement that also ends the annotator's
    lease and reads the comparison's other human verdicts (returned, as namespaces): the field
    values the ORM would write (defaults, auto_now_add) and its pre_save/post_save signals."""
    pre_save.send(sender=Judgement, instance=judgement, raw=False, using=connection.alias, update_fields=None)
    values = [f.get_db_prep_save(f.pre_save(judgement, True), connection) for f in _INSERT_FIELDS]
    cursor.execute(_WRITE_SQL, [*values, judgement.comparison_id, judgement.annotator_id, judgement.comparison_id])
    rows = cursor.fetchall()
    judgement.pk = next(pk for new, pk, *_ in rows if new)
    judgement._state.adding, judgement._state.db = False, connection.alias
    post_save.send(sender=Judgement, instance=judgement, created=True, update_fields=None, raw=False, using=connection.alias)
    return [SimpleNamespace(verdict=v, ranking=_json(r), is_adjudication=a) for new, _, v, r, a in rows if not new]


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def comparison_offered(*, project, comparison_id: int, annotator) -> Comparison | None:
    """The comparison if the queue offered it to this annotator (they hold a lease on it, live or
    lapsed) or they have judged or skipped it already (a repeated click); otherwise None, the same
    answer for an id that does not exist, so guessing ids teaches nothing. Machine-only
    comparisons (evaluation pairs the queue never offers) are thereby out of people's reach."""
    mine = {"comparison": OuterRef("pk"), "annotator": annotator}
    return (Comparison.objects.filter(project=project, pk=comparison_id)
            .filter(Exists(Assignment.objects.filter(**mine)) | Exists(Judgement.objects.filter(**mine))
                    | Exists(Skip.objects.filter(**mine))).first())


def judgement_undo(*, project, annotator) -> Comparison | None:
    """Deletes the annotator's latest judgement in the project (if recent and not adjudicated) and
    leases its comparison back to them, so it comes up again next; None when there is nothing to undo."""
    with transaction.atomic():
        latest = (Judgement.objects.select_for_update().filter(comparison__project=project, annotator=annotator, is_adjudication=False,
                                                               created_at__gte=timezone.now() - UNDO_WINDOW)
                  .order_by("-created_at", "-id").first())
        if latest is None:
            return None
        comparison = Comparison.objects.select_for_update().get(pk=latest.comparison_id)
        if comparison.status == ComparisonStatus.ADJUDICATED:
            return None
        progress_lock(comparison_id=comparison.pk, annotator_id=annotator.pk)
        latest.delete()
        comparison_lease(comparison=comparison, annotator=annotator)
        _status_refresh(comparison)
    return comparison


def comparison_lease(*, comparison: Comparison, annotator) -> None:
    """One INSERT ... ON CONFLICT UPDATE: (re)starts the annotator's lease on the comparison."""
    Assignment.objects.bulk_create([Assignment(comparison=comparison, annotator=annotator, expires_at=timezone.now() + LEASE)],
                                   update_conflicts=True, unique_fields=["comparison", "annotator"], update_fields=["expires_at"])


def comparison_skip(*, comparison: Comparison, annotator) -> None:
    with transaction.atomic():
        Skip.objects.get_or_create(comparison=comparison, annotator=annotator)
        Assignment.objects.filter(comparison=comparison, annotator=annotator).delete()


def human_label(judgement) -> str:
    """A judgement as one nominal label: the canonical pairwise verdict, or a k-way's top group."""
    if judgement.verdict == Verdict.RANKING:
        return "top:" + ",".join(str(x) for x in sorted(judgement.ranking[0])) if judgement.ranking else "none"
    return judgement.verdict


def _status_refresh(comparison: Comparison, judgements=None) -> None:
    """open until enough people judged; then complete if they agree, disputed if not. An
    adjudication settles it. Called with the comparison row locked (and, when the caller has them,
    its human judgements). Live counters are published only when the status changes (every other
    judgement leaves them as they were: a count query and a publish saved on the hot path)."""
    if judgements is None:
        judgements = list(Judgement.objects.filter(comparison=comparison, source=JudgementSource.HUMAN))
    if any(j.is_adjudication for j in judgements):
        status = ComparisonStatus.ADJUDICATED
    elif len(judgements) < comparison.required_annotations:
        status = ComparisonStatus.OPEN
    else:
        status = ComparisonStatus.COMPLETE if len({human_label(j) for j in judgements}) == 1 else ComparisonStatus.DISPUTED
    if status != comparison.status:  # the counters are counts of statuses: unchanged unless this changed
        comparison.status = status
        Comparison.objects.filter(pk=comparison.pk).update(status=status)
        events.counters_changed(comparison.project_id)


def comparison_adjudicate(*, comparison: Comparison, researcher, ranking, both_bad: bool = False, rationale: str = "") -> Judgement:
    """A researcher's final word on a disputed comparison. It replaces their own earlier judgement
    of it, if any (one judgement per person and comparison)."""
    rationale_check(rationale)
    with transaction.atomic():
        locked = Comparison.objects.select_for_update().get(pk=comparison.pk)
        progress_lock(comparison_id=locked.pk, annotator_id=researcher.pk)
        positions = dict(ComparisonItem.objects.filter(comparison=locked).values_list("generation_id", "position"))
        groups = ranking_for(list(positions), ranking, both_bad=both_bad)
        judgement, _ = Judgement.objects.update_or_create(
            comparison=locked, annotator=researcher,
            defaults={"source": JudgementSource.HUMAN, "verdict": verdict_of(positions, groups, both_bad=both_bad, kind=locked.kind),
                      "ranking": groups, "shown_order": sorted(positions), "rationale": rationale.strip()[:5000],
                      "is_adjudication": True})
        _status_refresh(locked)
    return judgement


OUTCOME_VERDICT = {1.0: Verdict.A, 0.0: Verdict.B, 0.5: Verdict.TIE}


def teacher_judgement_record(*, comparison_id: int, judge_name: str, judge_model, probability: float | None,
                             ranking: list, details: dict, shown_order, outcome: float | None = None) -> Judgement:
    """Stores (or on a re-run, replaces) one judge's verdict. probability = P(a ≻ b), a = position 0;
    outcome = the verdict as a game for a (1, 0.5 or 0), decided by the one verdict rule that
    judge jobs and evaluations share (ml.judges.verdict_outcome, docs/judging.md); none for a ranking."""
    if probability is not None:
        if outcome not in OUTCOME_VERDICT:
            raise ValidationError(f"a pairwise verdict needs its outcome (1, 0.5 or 0), got {outcome!r}")
        verdict = OUTCOME_VERDICT[outcome]
    else:
        verdict = Verdict.RANKING
    try:
        judgement, _ = Judgement.objects.update_or_create(
            comparison_id=comparison_id, judge_name=judge_name[:200], annotator=None,
            defaults={"source": JudgementSource.TEACHER, "judge_model": judge_model, "verdict": verdict, "ranking": ranking,
                      "probability": probability, "details": details, "shown_order": shown_order})
    except IntegrityError as exc:  # a concurrent re-run of the same job: the other write won
        raise ValidationError(f"judgement for comparison {comparison_id} by {judge_name} is being written twice") from exc
    return judgement



def teacher_judgements_record(*, judge_name: str, judge_model, verdicts: list[dict], batch: int = 1000) -> int:
    """teacher_judgement_record for many comparisons at once (a judge job's chunk, an import): one
    INSERT ... ON CONFLICT DO UPDATE per `batch` verdicts, so a rerun replaces this judge's verdicts
    in place and a job stopped half-way resumes without duplicates. Each verdict is a dict of
    teacher_judgement_record's arguments (comparison_id, probability, outcome, ranking, details,
    shown_order). Returns how many were written."""
    rows = []
    for v in verdicts:
        probability, outcome = v.get("probability"), v.get("outcome")
        if probability is not None and outcome not in OUTCOME_VERDICT:
            raise ValidationError(f"a pairwise verdict needs its outcome (1, 0.5 or 0), got {outcome!r}")
        rows.append(Judgement(comparison_id=v["comparison_id"], source=JudgementSource.TEACHER, judge_model=judge_model,
                              judge_name=judge_name[:200], verdict=OUTCOME_VERDICT[outcome] if probability is not None else Verdict.RANKING,
                              ranking=v.get("ranking") or [], probability=probability, details=v.get("details") or {},
                              shown_order=v.get("shown_order") or []))
    fields = [f for f in _INSERT_FIELDS]
    update = ("source", "judge_model_id", "verdict", "ranking", "probability", "details", "shown_order")
    columns = ", ".join(f'"{f.column}"' for f in fields)
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            params = [f.get_db_prep_save(f.pre_save(j, True), connection) for j in chunk for f in fields]
            values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(chunk))
            cursor.execute(f"INSERT INTO {_T['j']} ({columns}) VALUES {values} "
                           "ON CONFLICT (comparison_id, judge_name) WHERE annotator_id IS NULL DO UPDATE SET "
                           + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in update), params)
            written += cursor.rowcount
    return written
