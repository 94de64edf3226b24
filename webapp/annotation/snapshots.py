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

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from webapp.annotation import aggregation, snapshot_quality
from webapp.annotation.models import (Comparison, ComparisonItem, ComparisonSource, ComparisonStatus, Judgement,
                                      JudgementSource, PreferencePair, PreferenceSnapshot)
from webapp.catalog.models import Split
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


def _assert_no_leak(rows: list[dict], prompts: dict, comparisons: list[dict]) -> None:
    """The rules again, on what is about to be stored: a bug upstream must fail loudly, not train on the test set."""
    origins = {v["judgement"]: v["origin"] for c in comparisons for v in c["all_votes"]}
    for row in rows:
        if prompts[row["prompt_id"]].split == Split.EVAL:
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
                    created_by=None) -> PreferenceSnapshot:
    """Aggregates, hashes and stores the pairs in one transaction; refuses an empty snapshot and
    one identical to an existing snapshot (same hash), and enqueues the file export."""
    comparisons, collected, everything = collect_votes(project=project, source_filter=source_filter)
    pairs, stats = aggregation.aggregate(comparisons, rule=rule, tie_policy=tie_policy)
    if not pairs:
        raise ValidationError("No preference pairs: no settled comparison has a decisive verdict from the chosen sources yet.")
    generations = Generation.objects.in_bulk({p[k] for p in pairs for k in ("chosen", "rejected")})
    prompts = {g.prompt_id: g.prompt for g in Generation.objects.filter(pk__in=generations).select_related("prompt")}
    rows = [dict(p, prompt_text=_prompt_text(prompts[p["prompt_id"]]), chosen_text=generations[p["chosen"]].text,
                 rejected_text=generations[p["rejected"]].text) for p in pairs]
    _assert_no_leak(rows, prompts, comparisons)
    settings_used = {"rule": rule, "tie_policy": tie_policy, "source_filter": source_filter}
    digest = content_hash(rows, settings_used)
    clash = PreferenceSnapshot.objects.filter(project=project, content_hash=digest).first()
    if clash is not None:
        raise ValidationError(f"Nothing changed since snapshot {clash.name!r}: it holds exactly these pairs.")
    if PreferenceSnapshot.objects.filter(project=project, name=name).exists():
        raise ValidationError(f"A snapshot named {name!r} already exists.")
    stats.update(collected, sources=_source_counts(comparisons))
    with transaction.atomic():
        snapshot = PreferenceSnapshot.objects.create(
            project=project, name=name, rule=rule, tie_policy=tie_policy, source_filter=source_filter, content_hash=digest,
            pair_count=len(rows), stats=stats, created_by=created_by,
            sources=snapshot_quality.snapshot_sources(comparisons, pairs),
            agreement=snapshot_quality.snapshot_agreement(everything, pairs))
        PreferencePair.objects.bulk_create([PreferencePair(
            snapshot=snapshot, prompt_id=r["prompt_id"], chosen_id=r["chosen"], rejected_id=r["rejected"],
            prompt_text=r["prompt_text"], chosen_text=r["chosen_text"], rejected_text=r["rejected_text"], weight=r["weight"],
            provenance={"comparison": r["comparison"], "judgements": r["votes"], **({"tie_broken_by": r["tie_broken_by"]} if "tie_broken_by" in r else {})})
            for r in rows], batch_size=1000)
        enqueue("workers.tasks.annotation.export_snapshot", snapshot.pk)
    return snapshot


def _prompt_text(prompt) -> str:
    return prompt.text if not prompt.messages else json.dumps(prompt.messages, ensure_ascii=False)


def _source_counts(comparisons) -> dict:
    counts = {"human": 0, "teacher": 0, "imported": 0}
    for c in comparisons:
        for v in c["votes"]:
            counts[v["source"]] += 1
    return counts
