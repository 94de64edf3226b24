"""The default freeze in PostgreSQL (issue 23): the majority rule with ties dropped over pairwise
comparisons is aggregated into a temporary votes table, the pairs are written by one INSERT ... SELECT,
and only what the content hash needs is read back; the snapshot's agreement counts come from four
grouped queries. snapshots.snapshot_freeze decides when this path applies (sql_aggregates) and keeps
the Python path for every other rule; the hash is byte-identical either way."""
import itertools
from json.encoder import encode_basestring as _encode_str

from django.core.exceptions import ValidationError
from django.db import connection

from webapp.annotation import snapshot_quality, snapshots
from webapp.annotation.models import Comparison, ComparisonItem, ComparisonKind, ComparisonStatus, Judgement, JudgementSource, PreferencePair
from webapp.catalog.models import Prompt
from webapp.generation.models import Generation


def sql_aggregates(project, rule: str, tie_policy: str) -> bool:
    """The majority rule with ties dropped over pairwise comparisons only (the defaults) is one SQL
    statement (sql_freeze); anything else goes through aggregation.aggregate in Python."""
    return rule == "majority" and tie_policy == "drop" and not snapshots.trainable_comparisons(project=project).exclude(
        kind=ComparisonKind.PAIRWISE).exclude(status=ComparisonStatus.DISPUTED).exists()


# aggregation.aggregate's majority rule for pairwise comparisons, per comparison in PostgreSQL, into a
# temporary table (no texts): each usable vote (collect_votes' filters; an adjudication, where
# present, the only one) is a side: a (position 0 ranked first, or a judge's P > 0.5), b, t (tie) or
# x (both bad, in the total but for nobody). The pair is made when the sides differ and both-bad is
# not most of the say (`decisive`).
_SQL_VOTES = f"""
CREATE TEMPORARY TABLE freeze_votes ON COMMIT DROP AS
SELECT c.id, c.priority, c.prompt_id, p.split, a.generation_id AS a, b.generation_id AS b, v.sa, v.sb, v.total, v.bb, v.ids,
       v.origins, v.raters, v.n_human, v.n_teacher, v.n_imported, (v.bb * 2 <= v.total AND v.sa <> v.sb) AS decisive
  FROM {Comparison._meta.db_table} c
  JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id
  JOIN {ComparisonItem._meta.db_table} a ON a.comparison_id = c.id AND a.position = 0
  JOIN {ComparisonItem._meta.db_table} b ON b.comparison_id = c.id AND b.position = 1
  CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE used AND side = 'a') AS sa, count(*) FILTER (WHERE used AND side = 'b') AS sb,
           count(*) FILTER (WHERE used) AS total, count(*) FILTER (WHERE used AND side = 'x') AS bb,
           array_agg(id ORDER BY id) FILTER (WHERE used) AS ids, array_agg(source ORDER BY id) FILTER (WHERE used) AS origins,
           array_agg(coalesce(annotator_id::text, judge_name) ORDER BY id) FILTER (WHERE used) AS raters,
           count(*) FILTER (WHERE source = 'human') AS n_human, count(*) FILTER (WHERE source = 'teacher') AS n_teacher,
           count(*) FILTER (WHERE source = 'imported') AS n_imported
      FROM (SELECT j.id, j.source, j.annotator_id, j.judge_name,
                   (j.is_adjudication OR NOT bool_or(j.is_adjudication) OVER ()) AS used,
                   CASE WHEN j.verdict = 'both_bad' THEN 'x'
                        WHEN jsonb_array_length(j.ranking) = 0 THEN
                             CASE WHEN j.probability > 0.5 THEN 'a' WHEN j.probability < 0.5 THEN 'b' ELSE 't' END
                        WHEN jsonb_array_length(j.ranking) >= 2 AND j.ranking -> 0 = jsonb_build_array(a.generation_id) THEN 'a'
                        WHEN jsonb_array_length(j.ranking) >= 2 AND j.ranking -> 0 = jsonb_build_array(b.generation_id) THEN 'b'
                        ELSE 't' END AS side
              FROM {Judgement._meta.db_table} j
             WHERE j.comparison_id = c.id AND j.source <> 'oracle' AND (%(source)s = 'both' OR j.source = %(source)s)
               AND (j.source <> 'human' OR c.status IN ('complete', 'adjudicated'))) w) v
 WHERE c.project_id = %(project)s AND c.evaluation_id IS NULL AND c.source <> 'evaluation' AND p.split <> 'eval'
   AND c.status <> 'disputed' AND c.kind = 'pairwise' AND v.total > 0"""
_SQL_VOTE_STATS = """
SELECT count(*), count(*) FILTER (WHERE bb * 2 > total), count(*) FILTER (WHERE bb * 2 <= total AND sa = sb),
       coalesce(sum(n_human), 0)::bigint, coalesce(sum(n_teacher), 0)::bigint, coalesce(sum(n_imported), 0)::bigint,
       min(id) FILTER (WHERE decisive AND (split = 'eval' OR 'oracle' = ANY(origins)))
  FROM freeze_votes"""
# The pairs, written by the database in queue order (so ids follow it, as COPY's did), and handed
# back as they are written for the hash: chosen = the side with more votes; texts as text_of gives
# them (freeze_prompts holds the chat prompts' text_of, made in Python); weight from freeze_weights,
# made in Python by aggregation._pair's own expression for each (votes for the chosen, total). The
# narrow rows are sorted and the texts looked up per row after, so no sort carries the texts.
_SQL_INSERT = f"""
INSERT INTO {PreferencePair._meta.db_table} (snapshot_id, prompt_id, chosen_id, rejected_id, prompt_text, chosen_text, rejected_text,
                                             weight, provenance)
SELECT %(snapshot)s, v.prompt_id, v.chosen, v.rejected,
       coalesce((SELECT fp.text FROM freeze_prompts fp WHERE fp.id = v.prompt_id), (SELECT p.text FROM {Prompt._meta.db_table} p WHERE p.id = v.prompt_id)),
       (SELECT g.text FROM {Generation._meta.db_table} g WHERE g.id = v.chosen), (SELECT g.text FROM {Generation._meta.db_table} g WHERE g.id = v.rejected),
       (SELECT fw.weight FROM freeze_weights fw WHERE fw.m = greatest(v.sa, v.sb) AND fw.total = v.total),
       jsonb_build_object('comparison', v.id, 'judgements', to_jsonb(v.ids))
  FROM (SELECT id, priority, prompt_id, sa, sb, total, ids, CASE WHEN sa > sb THEN a ELSE b END AS chosen,
               CASE WHEN sa > sb THEN b ELSE a END AS rejected
          FROM freeze_votes WHERE decisive ORDER BY priority DESC, id) v
 ORDER BY v.priority DESC, v.id
RETURNING (provenance ->> 'comparison')::bigint, prompt_id, chosen_id, rejected_id, prompt_text, chosen_text, rejected_text,
          (provenance -> 'judgements')::text, weight"""
_FILTER_ORIGIN = {"humans": "human", "teacher": "teacher", "imported": "imported", "both": "both"}


def sql_freeze(project, snapshot_id: int, source_filter: str, digest, stats, sources, used, people, progress) -> int:
    """The majority rule, ties dropped, in PostgreSQL: the votes aggregated into freeze_votes, the
    pairs written by one INSERT ... SELECT, and only what the hash needs read back (its RETURNING,
    streamed snapshots.CHUNK rows at a time). Fills the freeze's tallies as the Python path does; returns the
    number of pairs."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS freeze_votes, freeze_prompts, freeze_weights")
        cursor.execute(_SQL_VOTES, {"project": project.pk, "source": _FILTER_ORIGIN[source_filter]})
        cursor.execute(_SQL_VOTE_STATS)
        used_count, both_bad, ties, n_human, n_teacher, n_imported, leak = cursor.fetchone()
        if leak is not None:  # the rules again (_assert_no_leak)
            raise ValidationError(f"Refusing to freeze: comparison {leak} breaks the held-out or oracle rule.")
        for key, value in (("comparisons_used", used_count), ("both_bad", both_bad), ("ties_dropped", ties)):
            if value:
                stats[key] += value
        sources.add((), {"human": n_human, "teacher": n_teacher, "imported": n_imported})
        cursor.execute("SELECT o, r, count(*) FROM freeze_votes, unnest(origins, raters) AS u(o, r) WHERE decisive GROUP BY 1, 2")
        for origin, rater, n in cursor.fetchall():
            if origin == JudgementSource.HUMAN:
                sources.counts["human"]["judgements"] += n
                sources.annotators.add(int(rater))
                people.add(int(rater))
            else:
                sources.counts[origin][str(rater)] += n
        cursor.execute("CREATE TEMPORARY TABLE freeze_weights (m bigint, total bigint, weight float8) ON COMMIT DROP")
        cursor.execute("SELECT DISTINCT greatest(sa, sb), total FROM freeze_votes WHERE decisive")
        shares = cursor.fetchall()
        cursor.execute("INSERT INTO freeze_weights SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[])",
                       [[m for m, _ in shares], [t for _, t in shares], [round(min(max(m / t, 1e-6), 1.0), 6) for m, t in shares]])
        cursor.execute("CREATE TEMPORARY TABLE freeze_prompts (id bigint PRIMARY KEY, text text) ON COMMIT DROP")
    _chat_prompts_copy()
    if progress is not None:
        progress(0, "writing pairs")
    pairs = 0
    with connection.cursor() as cursor:
        rows = cursor.cursor.stream(_SQL_INSERT, {"snapshot": snapshot_id}, size=snapshots.CHUNK)
        while batch := list(itertools.islice(rows, snapshots.CHUNK)):
            digest.update(((", " if pairs else "") + ", ".join(_pair_json(*row) for row in batch)).encode())
            used.add_all(row[0] for row in batch)
            pairs += len(batch)
            if progress is not None:
                progress(pairs, f"{pairs:,} pairs")
        cursor.execute("DROP TABLE freeze_votes, freeze_prompts, freeze_weights")
    return pairs


def _chat_prompts_copy() -> None:
    """text_of for the pairs' prompts that have chat messages, into freeze_prompts (streamed)."""
    with connection.chunked_cursor() as prompts, connection.cursor() as cursor:
        prompts.execute(f"SELECT DISTINCT p.id, p.text, p.messages FROM {Prompt._meta.db_table} p JOIN freeze_votes v "
                        "ON v.prompt_id = p.id AND v.decisive WHERE p.messages IS NOT NULL")
        while chunk := prompts.fetchmany(snapshots.CHUNK):
            with cursor.copy("COPY freeze_prompts (id, text) FROM STDIN") as copy:
                for pid, text, messages in chunk:
                    copy.write_row((pid, snapshots.text_of(text, messages)))


def _pair_json(comparison, prompt_id, chosen, rejected, prompt_text, chosen_text, rejected_text, votes, weight) -> str:
    """_row_json of the pair a RETURNING row describes; `votes` is the judgement ids as jsonb prints
    an array of integers, "[1, 2]", which is json.dumps' own text for that list."""
    s = _encode_str
    return (f'{{"chosen": {chosen}, "chosen_text": {s(chosen_text)}, "comparison": {comparison}, '
            f'"prompt_id": {prompt_id}, "prompt_text": {s(prompt_text)}, "rejected": {rejected}, '
            f'"rejected_text": {s(rejected_text)}, "votes": {votes}, "weight": {float.__repr__(weight)}}}')


# snapshot_quality.AgreementTally's counts for a project of pairwise comparisons, in PostgreSQL. The
# scope: the pairs' comparisons (from this snapshot's rows) and every trainable comparison one of the
# people behind the pairs judged; `hv`: their human, non-adjudication votes as labels (vote_label).
# Both are temporary tables that the four grouped queries below (WITH scope ..., hv ...) read.
_SQL_SCOPE = f"""
CREATE TEMPORARY TABLE freeze_scope ON COMMIT DROP AS
  SELECT DISTINCT (pp.provenance ->> 'comparison')::bigint AS id FROM {PreferencePair._meta.db_table} pp WHERE pp.snapshot_id = %(snapshot)s
  UNION
  SELECT j.comparison_id FROM {Judgement._meta.db_table} j
    JOIN {Comparison._meta.db_table} c ON c.id = j.comparison_id JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id
   WHERE c.project_id = %(project)s AND c.evaluation_id IS NULL AND c.source <> 'evaluation' AND p.split <> 'eval'
     AND j.source = 'human' AND j.annotator_id = ANY(%(people)s)"""
_SQL_HV = f"""
CREATE TEMPORARY TABLE freeze_hv ON COMMIT DROP AS
  SELECT s.id AS cid, j.annotator_id AS rater, count(*) OVER (PARTITION BY s.id) AS m,
         CASE WHEN j.verdict = 'both_bad' THEN 'both_bad' WHEN jsonb_array_length(j.ranking) < 2 THEN 'tie'
              WHEN j.ranking -> 0 = jsonb_build_array(a.generation_id) THEN 'a' ELSE 'b' END AS label
    FROM freeze_scope s JOIN {ComparisonItem._meta.db_table} a ON a.comparison_id = s.id AND a.position = 0
    JOIN {Judgement._meta.db_table} j ON j.comparison_id = s.id AND j.source = 'human' AND NOT j.is_adjudication"""
_SQL_AGREEMENT = {
    "multi": "SELECT count(DISTINCT cid) FROM hv WHERE m >= 2",
    "coincidence": """SELECT x.label, y.label, sum(1.0::float8 / (x.m - 1)) FROM hv x JOIN hv y ON y.cid = x.cid AND y.rater <> x.rater
                       WHERE x.m >= 2 GROUP BY 1, 2""",
    "pairs": """SELECT x.rater, y.rater, x.label, y.label, count(*) FROM hv x JOIN hv y ON y.cid = x.cid AND x.rater::text < y.rater::text
                 GROUP BY 1, 2, 3, 4""",
    "judges": f"""SELECT CASE WHEN j.source = 'teacher' THEN j.judge_name ELSE j.source || ':' || j.judge_name END, t.top,
                         CASE WHEN j.probability > 0.5 THEN 'a' ELSE 'b' END, count(*)
                    FROM scope s JOIN {Judgement._meta.db_table} j ON j.comparison_id = s.id AND j.source NOT IN ('human', 'oracle')
                         AND j.probability IS NOT NULL AND j.probability <> 0.5
                    LEFT JOIN (SELECT cid, CASE WHEN sum((label = 'a')::int) > sum((label = 'b')::int) THEN 'a'
                                                WHEN sum((label = 'b')::int) > sum((label = 'a')::int) THEN 'b' END AS top
                                 FROM hv GROUP BY cid) t ON t.cid = s.id
                   GROUP BY 1, 2, 3"""}


def sql_agreement(project, snapshot_id: int, people: set):
    """AgreementTally filled from four grouped queries instead of a pass over every comparison."""
    tally, params = snapshot_quality.AgreementTally(), {"snapshot": snapshot_id, "project": project.pk, "people": sorted(people)}
    with connection.cursor() as cursor:  # scope and labels once, in temporary tables the four queries share
        cursor.execute("DROP TABLE IF EXISTS freeze_scope, freeze_hv")
        cursor.execute(_SQL_SCOPE, params)
        cursor.execute(_SQL_HV)
        prefix = "WITH scope AS (SELECT id FROM freeze_scope), hv AS (SELECT * FROM freeze_hv) "
        cursor.execute(prefix + _SQL_AGREEMENT["multi"])
        tally.multi = cursor.fetchone()[0]
        cursor.execute(prefix + _SQL_AGREEMENT["coincidence"])
        for x, y, value in cursor.fetchall():
            tally.coincidence[x, y] += value
        cursor.execute(prefix + _SQL_AGREEMENT["pairs"])
        for r1, r2, l1, l2, n in cursor.fetchall():
            tally.pair_tables[r1, r2][l1, l2] += n
        cursor.execute(prefix + _SQL_AGREEMENT["judges"])
        for name, top, label, n in cursor.fetchall():
            table = tally.judge_tables[name]
            if top is not None:
                table[top, label] += n
        cursor.execute("DROP TABLE freeze_scope, freeze_hv")
    return tally
