"""Preference snapshots: gather the votes (by source filter), aggregate them into chosen/rejected
pairs (aggregation.py), and freeze the pairs with their texts under a content hash; the file exports
(TRL JSONL, HF dataset, LLaMA-Factory, Axolotl) live in exports.py. Human votes
count only from settled comparisons (complete or adjudicated); disputed ones wait for a researcher.

Leakage rules (DESIGN.md, provenance): a snapshot never takes an evaluation's comparisons, a prompt of
the held-out `eval` split, or an oracle verdict. The oracle is an evaluation instrument, never a label
source. collect_votes filters them out and snapshot_freeze checks the result again before storing;
what was left out is counted in the snapshot's stats, and the sources it drew on in `sources`."""
import hashlib
import json
import uuid
from json.encoder import encode_basestring as _encode_str
from collections import Counter, defaultdict

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q

from webapp.annotation import aggregation, snapshot_quality, snapshot_sql
from webapp.annotation.models import (Comparison, ComparisonItem, ComparisonKind, ComparisonSource, ComparisonStatus, Judgement,
                                      JudgementSource, PreferencePair, PreferenceSnapshot)
from webapp.catalog.models import Prompt, Split
from webapp.celery import enqueue
from webapp.generation.models import Generation

SETTLED = (ComparisonStatus.COMPLETE, ComparisonStatus.ADJUDICATED)


def trainable_comparisons(*, project):
    """The comparisons a snapshot may learn from: none of an evaluation, none on a held-out prompt."""
    return (Comparison.objects.filter(project=project, evaluation__isnull=True)
            .exclude(source=ComparisonSource.EVALUATION).exclude(prompt__split=Split.EVAL))


# A judgement's origin -> its vote source. Imported datasets are their own source, not the teacher:
# the "teacher" filter means the teacher-judge only; "both" takes every non-oracle source.
_VOTE_SOURCE = {JudgementSource.HUMAN: "human", JudgementSource.TEACHER: "teacher", JudgementSource.IMPORTED: "imported"}
_FILTER_SOURCE = {"humans": "human", "teacher": "teacher", "imported": "imported"}


def collect_votes(*, project, source_filter: str) -> tuple[list[dict], dict, list[dict]]:
    """The aggregation input for a project: trainable, undisputed comparisons with their candidates
    and filtered votes (never an oracle verdict). Also returns every trainable comparison, disputed
    ones included, with `all_votes` (every non-oracle vote): the agreement figures need the items
    people disagreed on, which settling keeps out of the pairs."""
    if source_filter not in aggregation.SOURCE_FILTERS:
        raise ValidationError(f"source filter must be one of {', '.join(aggregation.SOURCE_FILTERS)}")
    trainable = trainable_comparisons(project=project)
    comparisons = {c["id"]: dict(c, candidates=[], votes=[], teacher_votes=[], all_votes=[]) for c in
                   trainable.values("id", "prompt_id", "kind", "status")}
    for cid, gid in ComparisonItem.objects.filter(comparison_id__in=comparisons).order_by("position").values_list("comparison_id", "generation_id"):
        comparisons[cid]["candidates"].append(gid)
    for j in Judgement.objects.filter(comparison_id__in=comparisons).exclude(source=JudgementSource.ORACLE).values(
            "id", "comparison_id", "source", "annotator_id", "judge_name", "verdict", "ranking", "probability", "is_adjudication"):
        comparison = comparisons[j["comparison_id"]]
        vote = {"judgement": j["id"], "source": _VOTE_SOURCE[j["source"]],
                "origin": j["source"], "rater": j["annotator_id"] or j["judge_name"],
                "ranking": j["ranking"] or _judge_ranking(comparison, j),
                "both_bad": j["verdict"] == "both_bad", "probability": j["probability"], "adjudication": j["is_adjudication"]}
        comparison["all_votes"].append(vote)
        if comparison["status"] == ComparisonStatus.DISPUTED:
            continue
        if vote["source"] == "teacher":
            comparison["teacher_votes"].append(vote)
        wanted = source_filter == "both" or _FILTER_SOURCE[source_filter] == vote["source"]
        if wanted and (vote["source"] != "human" or comparison["status"] in SETTLED):
            comparison["votes"].append(vote)
    everything = Comparison.objects.filter(project=project)
    left_out = {"disputed_excluded": trainable.filter(status=ComparisonStatus.DISPUTED).count(),
                "evaluation_comparisons_excluded": everything.filter(Q(evaluation__isnull=False) | Q(source=ComparisonSource.EVALUATION)).count(),
                "eval_prompt_comparisons_excluded": everything.filter(evaluation__isnull=True, prompt__split=Split.EVAL)
                .exclude(source=ComparisonSource.EVALUATION).count(),
                "oracle_judgements_excluded": Judgement.objects.filter(comparison_id__in=comparisons, source=JudgementSource.ORACLE).count()}
    usable = [c for c in comparisons.values() if c["votes"] and len(c["candidates"]) >= 2]
    return usable, left_out, list(comparisons.values())


def _assert_no_leak(rows: list[dict], comparisons: list[dict], splits: dict) -> None:
    """The rules again, on what is about to be stored: a bug upstream must fail loudly, not train on the test set."""
    origins = {v["judgement"]: v["origin"] for c in comparisons for v in c["all_votes"]}
    for row in rows:
        if splits[row["prompt_id"]] == Split.EVAL:
            raise ValidationError(f"Refusing to freeze: prompt {row['prompt_id']} is a held-out (eval) prompt.")
        if any(origins.get(j) in (None, JudgementSource.ORACLE) for j in row["votes"]):
            raise ValidationError(f"Refusing to freeze: comparison {row['comparison']} would use an oracle verdict.")


def _judge_ranking(comparison, judgement) -> list:
    a, b = comparison["candidates"][:2]
    p = judgement["probability"]
    return [[a], [b]] if p > 0.5 else [[b], [a]] if p < 0.5 else [[a, b]]


def content_hash(rows: list[dict], settings_used: dict) -> str:
    payload = json.dumps({"settings": settings_used, "pairs": rows}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def snapshot_freeze(*, project, name: str, rule: str = "majority", tie_policy: str = "drop", source_filter: str = "both",
                    created_by=None, progress=None) -> PreferenceSnapshot:
    """Aggregates, hashes and stores the pairs in one transaction; refuses an empty snapshot and
    one identical to an existing snapshot (same hash), and enqueues the file export.

    It streams (issue 23): the trainable comparisons come from one server-side cursor with their
    candidates and votes, in queue order, CHUNK at a time; each chunk is aggregated, its texts read
    in one query, its pairs written by COPY and hashed as they go (the same sha256 content_hash
    gives the whole list), so memory stays flat however many pairs a project holds. The
    agreement figures are tallied on the way (snapshot_quality.AgreementTally) and finished with a
    second pass over the comparisons. progress(done, stage), if given, is called between chunks."""
    if source_filter not in aggregation.SOURCE_FILTERS:
        raise ValidationError(f"source filter must be one of {', '.join(aggregation.SOURCE_FILTERS)}")
    if rule not in aggregation.RULES or tie_policy not in aggregation.TIE_POLICIES:
        raise ValidationError(f"rule must be one of {aggregation.RULES} and tie policy one of {aggregation.TIE_POLICIES}")
    if PreferenceSnapshot.objects.filter(project=project, name=name).exists():
        raise ValidationError(f"A snapshot named {name!r} already exists.")
    settings_used = {"rule": rule, "tie_policy": tie_policy, "source_filter": source_filter}
    with transaction.atomic():
        weights = _reliability(project, source_filter) if rule == "agreement_weighted" else {}
        snapshot = PreferenceSnapshot.objects.create(
            project=project, name=name, rule=rule, tie_policy=tie_policy, source_filter=source_filter,
            content_hash=f"freezing:{uuid.uuid4().hex}", created_by=created_by)
        digest, stats, sources = hashlib.sha256(b'{"pairs": ['), defaultdict(int), snapshot_quality.SourceTally()
        used, people = snapshot_quality.IdSet(), set()  # the pairs' comparisons (a bitmap), the people behind them
        if snapshot_sql.sql_aggregates(project, rule, tie_policy):
            pairs = snapshot_sql.sql_freeze(project, snapshot.pk, source_filter, digest, stats, sources, used, people, progress)
        else:
            pairs = 0
            for rows, votes, vote_counts, chunk_stats in _python_pair_chunks(project, source_filter, rule, tie_policy, weights):
                for key, value in chunk_stats.items():
                    stats[key] += value
                for row in rows:
                    digest.update(((", " if pairs else "") + _row_json(row)).encode())
                    pairs += 1
                _pairs_copy(snapshot.pk, rows)
                sources.add(votes, vote_counts)
                used.add_all(row["comparison"] for row in rows)
                people.update(rater for _, origin, rater in votes if origin == JudgementSource.HUMAN)
                if progress is not None:
                    progress(pairs, f"{pairs:,} pairs")
        if not pairs:
            raise ValidationError("No preference pairs: no settled comparison has a decisive verdict from the chosen sources yet.")
        digest.update(("], \"settings\": " + json.dumps(settings_used, sort_keys=True, ensure_ascii=False) + "}").encode())
        content = digest.hexdigest()
        clash = PreferenceSnapshot.objects.filter(project=project, content_hash=content).exclude(pk=snapshot.pk).first()
        if clash is not None:
            raise ValidationError(f"Nothing changed since snapshot {clash.name!r}: it holds exactly these pairs.")
        if progress is not None:
            progress(pairs, "agreement")
        if not trainable_comparisons(project=project).exclude(kind=ComparisonKind.PAIRWISE).exists():
            tally = snapshot_sql.sql_agreement(project, snapshot.pk, people)
        else:  # k-way labels ("top:...") are read in Python
            tally = snapshot_quality.AgreementTally()
            for chunk in _comparison_chunks(project, source_filter):
                tally.add(chunk, used=used, people=people)
        stats = dict(stats, pairs=pairs)
        stats.update(_left_out(project), sources=sources.vote_counts())
        stats["disputed_excluded"] = trainable_comparisons(project=project).filter(status=ComparisonStatus.DISPUTED).count()
        PreferenceSnapshot.objects.filter(pk=snapshot.pk).update(
            content_hash=content, pair_count=pairs, stats=stats, sources=sources.report(), agreement=tally.report())
        snapshot.refresh_from_db()
        enqueue("workers.tasks.annotation.export_snapshot", snapshot.pk)
    return snapshot


CHUNK = 2000
_ROW_KEYS = ("chosen", "chosen_text", "comparison", "prompt_id", "prompt_text", "rejected", "rejected_text", "votes", "weight")


def _row_json(row: dict) -> str:
    """json.dumps(row, sort_keys=True, ensure_ascii=False), written out for the usual keys (three
    times faster; the freeze hashes every pair); any other row goes through json.dumps itself."""
    if len(row) != len(_ROW_KEYS) or type(row["weight"]) is not float:
        return json.dumps(row, sort_keys=True, ensure_ascii=False)
    s = _encode_str
    return (f'{{"chosen": {int(row["chosen"])}, "chosen_text": {s(row["chosen_text"])}, "comparison": {int(row["comparison"])}, '
            f'"prompt_id": {int(row["prompt_id"])}, "prompt_text": {s(row["prompt_text"])}, "rejected": {int(row["rejected"])}, '
            f'"rejected_text": {s(row["rejected_text"])}, "votes": [{", ".join(str(int(v)) for v in row["votes"])}], '
            f'"weight": {float.__repr__(row["weight"])}}}')


def _python_pair_chunks(project, source_filter, rule, tie_policy, weights):
    """aggregation.aggregate chunk by chunk: every rule, tie policy and comparison kind. Yields
    (rows with texts, the pairs' votes as (judgement, origin, rater), votes per source of the usable
    comparisons, stats)."""
    for chunk in _comparison_chunks(project, source_filter):
        usable = [c for c in chunk if c["votes"] and len(c["candidates"]) >= 2]
        made, stats = aggregation.aggregate(usable, rule=rule, tie_policy=tie_policy, weights=weights)
        stats.pop("pairs", None)
        rows, splits = _with_texts(made)
        _assert_no_leak(rows, chunk, splits)
        by_id = {v["judgement"]: v for c in chunk for v in c["all_votes"]}
        votes = [(j, by_id[j]["origin"], by_id[j]["rater"]) for j in sorted({j for p in made for j in p["votes"]})]
        yield rows, votes, Counter(v["source"] for c in usable for v in c["votes"]), stats


def text_of(text: str, messages) -> str:
    """A prompt as a pair stores it: its text, or its chat messages as JSON."""
    return text if not messages else json.dumps(_json(messages), ensure_ascii=False)


# The trainable comparisons (trainable_comparisons' rules) in queue order, with their candidates
# in position order and their non-oracle votes in id order: one server-side cursor, so the rows
# arrive CHUNK at a time and the project is never in memory at once.
_STREAM_SQL = f"""
SELECT c.id, c.prompt_id, c.kind, c.status,
       (SELECT array_agg(i.generation_id ORDER BY i.position) FROM {ComparisonItem._meta.db_table} i WHERE i.comparison_id = c.id),
       (SELECT json_agg(json_build_array(j.id, j.source, j.annotator_id, j.judge_name, j.verdict, j.ranking, j.probability,
                                         j.is_adjudication) ORDER BY j.id)
          FROM {Judgement._meta.db_table} j WHERE j.comparison_id = c.id AND j.source <> 'oracle')
  FROM {Comparison._meta.db_table} c JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id
 WHERE c.project_id = %s AND c.evaluation_id IS NULL AND c.source <> 'evaluation' AND p.split <> 'eval'
 ORDER BY c.priority DESC, c.id"""


def _comparison_chunks(project, source_filter: str):
    """collect_votes' comparison dicts, CHUNK at a time, from the server-side cursor."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(_STREAM_SQL, [project.pk])
        while rows := cursor.fetchmany(CHUNK):
            yield [_comparison(row, source_filter) for row in rows]


def _comparison(row, source_filter: str) -> dict:
    cid, prompt_id, kind, status, candidates, votes = row
    comparison = {"id": cid, "prompt_id": prompt_id, "kind": kind, "status": status, "candidates": list(candidates or []),
                  "votes": [], "teacher_votes": [], "all_votes": []}
    for jid, origin, annotator_id, judge_name, verdict, ranking, probability, adjudication in _json(votes) or []:
        j = {"probability": probability}
        vote = {"judgement": jid, "source": _VOTE_SOURCE[origin], "origin": origin, "rater": annotator_id or judge_name,
                "ranking": ranking or _judge_ranking(comparison, j), "both_bad": verdict == "both_bad", "probability": probability,
                "adjudication": adjudication}
        _sort_vote(comparison, vote, source_filter)
    return comparison


def _sort_vote(comparison: dict, vote: dict, source_filter: str) -> None:
    """collect_votes' rule for one vote: every vote counts for agreement; disputed comparisons give
    no pairs; human votes only from settled comparisons."""
    comparison["all_votes"].append(vote)
    if comparison["status"] == ComparisonStatus.DISPUTED:
        return
    if vote["source"] == "teacher":
        comparison["teacher_votes"].append(vote)
    wanted = source_filter == "both" or _FILTER_SOURCE[source_filter] == vote["source"]
    if wanted and (vote["source"] != "human" or comparison["status"] in SETTLED):
        comparison["votes"].append(vote)


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _reliability(project, source_filter: str) -> dict:
    """aggregation.reliability over every usable comparison, tallied chunk by chunk (a first pass)."""
    agree, total = defaultdict(int), defaultdict(int)
    for chunk in _comparison_chunks(project, source_filter):
        aggregation.reliability_tally([c for c in chunk if c["votes"] and len(c["candidates"]) >= 2], agree, total)
    return {r: (agree[r] + 1) / (total[r] + 2) for r in total}


def _with_texts(pairs: list[dict]) -> tuple[list[dict], dict]:
    """The pairs with their prompt and answer texts, read in one query each for the chunk, and
    {prompt id: split} for the leak check."""
    if not pairs:
        return [], {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, text FROM {Generation._meta.db_table} WHERE id = ANY(%s)",
                       [list({p[k] for p in pairs for k in ("chosen", "rejected")})])
        texts = dict(cursor.fetchall())
        cursor.execute(f"SELECT id, text, messages, split FROM {Prompt._meta.db_table} WHERE id = ANY(%s)",
                       [list({p["prompt_id"] for p in pairs})])
        prompts = {pid: (text_of(text, messages), split)
                   for pid, text, messages, split in cursor.fetchall()}
    return ([dict(p, prompt_text=prompts[p["prompt_id"]][0], chosen_text=texts[p["chosen"]], rejected_text=texts[p["rejected"]])
             for p in pairs], {pid: split for pid, (_, split) in prompts.items()})


_PAIR_COLUMNS = ("snapshot_id", "prompt_id", "chosen_id", "rejected_id", "prompt_text", "chosen_text", "rejected_text", "weight",
                 "provenance")


def _pairs_copy(snapshot_id: int, rows: list[dict]) -> None:
    if not rows:
        return
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {PreferencePair._meta.db_table} ({', '.join(_PAIR_COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                provenance = {"comparison": r["comparison"], "judgements": r["votes"],
                              **({"tie_broken_by": r["tie_broken_by"]} if "tie_broken_by" in r else {})}
                copy.write_row((snapshot_id, r["prompt_id"], r["chosen"], r["rejected"], r["prompt_text"], r["chosen_text"],
                                r["rejected_text"], r["weight"], json.dumps(provenance)))


def _left_out(project) -> dict:
    """What the rules kept out, counted in SQL (collect_votes' left_out but the disputed count, tallied while streaming)."""
    everything = Comparison.objects.filter(project=project)
    trainable = trainable_comparisons(project=project)
    return {"evaluation_comparisons_excluded": everything.filter(Q(evaluation__isnull=False) | Q(source=ComparisonSource.EVALUATION)).count(),
            "eval_prompt_comparisons_excluded": everything.filter(evaluation__isnull=True, prompt__split=Split.EVAL)
            .exclude(source=ComparisonSource.EVALUATION).count(),
            "oracle_judgements_excluded": Judgement.objects.filter(comparison__in=trainable, source=JudgementSource.ORACLE).count()}


def _prompt_text(prompt) -> str:
    return prompt.text if not prompt.messages else json.dumps(prompt.messages, ensure_ascii=False)


def _source_counts(comparisons) -> dict:
    counts = {"human": 0, "teacher": 0, "imported": 0}
    for c in comparisons:
        for v in c["votes"]:
            counts[v["source"]] += 1
    return counts
