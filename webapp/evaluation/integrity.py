"""Reads that say whether an evaluation's ranking can be trusted. Contamination: the prompts an
evaluation scored, matched by content hash against the training data in the lineage of every model
version it scores (the snapshots it and its ancestors were trained on, and SFT data a build
declared, e.g. the demo build's prompts/sft_hashes.txt named in build.json). Regression: a student
that scores below its parent model version on the same prompts, with a paired 95% CI.

A model evaluated on prompts it was trained on is contaminated: its scores are shown, flagged, and
it is never ranked as if clean."""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from webapp.annotation.models import PreferencePair
from webapp.catalog.models import ModelVersion, Prompt
from webapp.evaluation.models import Evaluation, EvaluationOutput

MAX_LINEAGE = 50  # a parent chain longer than this is a data error, not a lineage


def lineage(model_version: ModelVersion) -> list[ModelVersion]:
    """The model version, its parent, its parent's parent ... (oldest last)."""
    chain, seen, current = [], set(), model_version
    while current is not None and current.pk not in seen and len(chain) < MAX_LINEAGE:
        chain.append(current)
        seen.add(current.pk)
        current = (ModelVersion.objects.select_related("produced_by").filter(pk=current.parent_id).first()
                   if current.parent_id else None)
    return chain


@lru_cache(maxsize=64)
def _declared_hashes(path: str, mtime: float) -> frozenset:
    return frozenset(line.strip() for line in Path(path).read_text().splitlines() if line.strip())


def declared_sft_hashes(model_version: ModelVersion) -> tuple[str, frozenset] | None:
    """Prompt hashes a build says the weights at `source` were trained on: build.json in the model
    directory or its parent (the demo dir), key sft_prompt_hashes.file, one hash per line."""
    source = Path(model_version.source)
    for folder in (source, source.parent):
        build = folder / "build.json"
        if not build.is_file():
            continue
        try:
            entry = json.loads(build.read_text()).get("sft_prompt_hashes")
        except (OSError, ValueError):
            return None
        if isinstance(entry, dict) and entry.get("file") and (folder / entry["file"]).is_file():
            path = folder / entry["file"]
            return str(path), _declared_hashes(str(path), path.stat().st_mtime)
        return None
    return None


def training_sources(model_version: ModelVersion) -> list[dict]:
    """Each training data set in the lineage: {"kind": snapshot|sft, "label", "via" (the model
    version it trained), "hashes": set of prompt content hashes}."""
    sources = []
    for ancestor in lineage(model_version):
        snapshots = {s for s in (ancestor.snapshot_id, ancestor.produced_by.snapshot_id if ancestor.produced_by_id else None) if s}
        for snapshot_id in sorted(snapshots):
            hashes = set(PreferencePair.objects.filter(snapshot_id=snapshot_id).values_list("prompt__content_hash", flat=True))
            name = PreferencePair.objects.filter(snapshot_id=snapshot_id).values_list("snapshot__name", flat=True).first()
            sources.append({"kind": "snapshot", "label": f"snapshot {name or snapshot_id}", "via": ancestor.name, "hashes": hashes})
        declared = declared_sft_hashes(ancestor)
        if declared is not None:
            sources.append({"kind": "sft", "label": f"SFT data ({Path(declared[0]).name})", "via": ancestor.name,
                            "hashes": declared[1]})
    return sources


def scored_prompt_hashes(evaluation: Evaluation) -> set:
    prompt_ids = EvaluationOutput.objects.filter(evaluation=evaluation).values("prompt_id")
    return set(Prompt.objects.filter(pk__in=prompt_ids).values_list("content_hash", flat=True))


def evaluation_contamination(*, evaluation: Evaluation) -> dict:
    """{model_version id: {"prompts", "overlap", "share", "contaminated", "sources": [{label, via, overlap}]}}
    for the teacher and every candidate; overlap = scored prompts whose hash is in some training set."""
    scored = scored_prompt_hashes(evaluation)
    report = {}
    for mv in [evaluation.teacher, *evaluation.model_versions.order_by("id")]:
        seen, rows = set(), []
        for source in training_sources(mv):
            hit = scored & source["hashes"]
            seen |= hit
            rows.append({"label": source["label"], "via": source["via"], "kind": source["kind"], "overlap": len(hit)})
        report[mv.id] = {"prompts": len(scored), "overlap": len(seen), "share": len(seen) / len(scored) if scored else 0.0,
                         "contaminated": bool(seen), "sources": rows}
    return report


def unscored_parents(*, evaluation: Evaluation) -> list[dict]:
    """Candidates whose parent this evaluation did not score: nothing here says whether they improved."""
    candidates = {mv.id: mv for mv in evaluation.model_versions.select_related("parent")}
    return [{"model_version": mv, "parent": mv.parent} for mv in candidates.values()
            if mv.parent_id and mv.parent_id not in candidates]


def project_contamination(*, project, model_version_ids) -> dict:
    """{model_version id: how many prompts some evaluation of the project scored it on that its
    lineage trained on} (the leaderboard pools every evaluation's outcomes, so it checks them all)."""
    out = {}
    for mv in ModelVersion.objects.filter(project=project, pk__in=list(model_version_ids)).select_related("produced_by"):
        prompt_ids = EvaluationOutput.objects.filter(evaluation__project=project, model_version=mv).values("prompt_id")
        scored = set(Prompt.objects.filter(pk__in=prompt_ids).values_list("content_hash", flat=True))
        out[mv.id] = len(scored & set().union(*(s["hashes"] for s in training_sources(mv)))) if scored else 0
    return out


def _paired_difference(child: list, parent: list, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of child − parent over paired 0/1 scores with a percentile-bootstrap 95% CI."""
    d = np.asarray(child, dtype=float) - np.asarray(parent, dtype=float)
    draws = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    low, high = np.percentile(d[draws].mean(axis=1), [2.5, 97.5])
    return {"delta": float(d.mean()), "low": float(low), "high": float(high), "n": int(d.size)}


def evaluation_regressions(*, evaluation: Evaluation) -> list[dict]:
    """Students scoring below their parent model version in this evaluation: oracle accuracy on the
    same prompts (paired CI) and the win rates against the teacher (each with its CI). A row per
    candidate whose parent was scored too; `below` when either score is lower, `significant` when
    the paired oracle CI excludes zero or the win-rate intervals do not overlap."""
    candidates = {mv.id: mv for mv in evaluation.model_versions.all()}
    scores = {}
    for mv_id, prompt_id, correct in EvaluationOutput.objects.filter(evaluation=evaluation, oracle_correct__isnull=False) \
            .values_list("model_version_id", "prompt_id", "oracle_correct"):
        scores.setdefault(mv_id, {})[prompt_id] = float(correct)
    versus = evaluation.results.get("versus_teacher", {})
    rows = []
    for mv in candidates.values():
        parent_id = mv.parent_id
        if parent_id is None or parent_id not in candidates:
            continue
        row = {"model_version": mv, "parent": candidates[parent_id], "oracle": None, "win_rates": []}
        shared = sorted(set(scores.get(mv.id, {})) & set(scores.get(parent_id, {})))
        if shared:
            row["oracle"] = _paired_difference([scores[mv.id][p] for p in shared], [scores[parent_id][p] for p in shared])
        for source in ("teacher", "oracle", "human"):
            mine, theirs = versus.get(str(mv.id), {}).get(source), versus.get(str(parent_id), {}).get(source)
            if mine and theirs:
                row["win_rates"].append({"source": source, "child": mine, "parent": theirs,
                                         "below": mine["rate"] < theirs["rate"], "separated": mine["high"] < theirs["low"]})
        oracle_below = row["oracle"] is not None and row["oracle"]["delta"] < 0
        row["below"] = oracle_below or any(w["below"] for w in row["win_rates"])
        row["significant"] = (oracle_below and row["oracle"]["high"] < 0) or any(w["separated"] for w in row["win_rates"])
        rows.append(row)
    return rows
