"""Reads for evaluations and the loop: the prompts an evaluation covers, each candidate's outcomes
against the teacher per judge source, every pairwise outcome of a project (the leaderboard's input),
the side-by-side rows with their filters and word diff, and the loop rounds with live counts. The
summary and the leaderboard carry each model's contamination (integrity.py)."""
import difflib
import re
from collections import defaultdict

from django.db.models import Count, Q

from webapp.annotation.models import Comparison, ComparisonItem, ComparisonKind, Judgement, JudgementSource
from webapp.catalog.models import ModelRole, ModelVersion, Prompt
from webapp.evaluation import integrity
from webapp.evaluation.models import Evaluation, EvaluationOutput, Leaderboard, LoopRound

# A verdict as a game result for position 0: both-bad is no preference, so it counts as a tie.
OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
SOURCES = {"human": (JudgementSource.HUMAN,), "judge": (JudgementSource.TEACHER, JudgementSource.ORACLE),
           "all": (JudgementSource.HUMAN, JudgementSource.TEACHER, JudgementSource.ORACLE)}


def evaluations_for(*, project):
    return (Evaluation.objects.filter(project=project).select_related("teacher", "prompt_set")
            .prefetch_related("model_versions"))


def evaluation_prompts(*, evaluation: Evaluation) -> list:
    """The held-out prompts: the set's `split` (default eval; "" = all), at most `prompt_limit`."""
    prompts = Prompt.objects.filter(prompt_set=evaluation.prompt_set).order_by("id")
    split = evaluation.config.get("split", "eval")
    if split:
        prompts = prompts.filter(split=split)
    limit = evaluation.config.get("prompt_limit")
    return list(prompts[:limit] if limit else prompts)


def majority_outcome(outcomes: list) -> float:
    """Several human verdicts on one comparison -> one game: the side most of them chose, else a tie."""
    mean = sum(outcomes) / len(outcomes)
    return 1.0 if mean > 0.5 else 0.0 if mean < 0.5 else 0.5


def evaluation_outcomes(*, evaluation: Evaluation) -> dict:
    """{candidate model_version id: {"teacher": [...], "oracle": [...], "human": [...]}} with outcomes
    for the candidate (1 win, 0.5 tie, 0 loss); humans count once per comparison (majority)."""
    candidate_of = dict(ComparisonItem.objects.filter(comparison__evaluation=evaluation, position=0)
                        .values_list("comparison_id", "generation__model_version_id"))
    per_source = defaultdict(lambda: defaultdict(list))
    human = defaultdict(list)
    for comparison_id, source, verdict in Judgement.objects.filter(
            comparison__evaluation=evaluation, verdict__in=OUTCOME).values_list("comparison_id", "source", "verdict"):
        if source == JudgementSource.HUMAN:
            human[comparison_id].append(OUTCOME[verdict])
        else:
            per_source[candidate_of[comparison_id]][source].append(OUTCOME[verdict])
    for comparison_id, outcomes in human.items():
        per_source[candidate_of[comparison_id]]["human"].append(majority_outcome(outcomes))
    return {mv: dict(sources) for mv, sources in per_source.items()}


def leaderboard_pairs(*, project, source: str = "all") -> list:
    """Every pairwise outcome the project holds between two different model versions:
    [(model_version_a, model_version_b, outcome for a)], from judgements of the given source."""
    sides = defaultdict(dict)
    for comparison_id, position, mv in ComparisonItem.objects.filter(
            comparison__project=project, comparison__kind=ComparisonKind.PAIRWISE).values_list(
            "comparison_id", "position", "generation__model_version_id"):
        sides[comparison_id][position] = mv
    pairs = []
    for comparison_id, verdict in Judgement.objects.filter(
            comparison__project=project, source__in=SOURCES[source], verdict__in=OUTCOME).values_list(
            "comparison_id", "verdict"):
        side = sides.get(comparison_id, {})
        if len(side) == 2 and side[0] != side[1]:
            pairs.append((side[0], side[1], OUTCOME[verdict]))
    return pairs


def benchmark_cells(scores: dict, columns: list) -> list:
    """One cell per (task, metric) column: {"task", "metric", "score"}, score {"value", "stderr"} or
    None where the model has no score."""
    return [{"task": task, "metric": metric, "score": (scores.get(task) or {}).get(metric)} for task, metric in columns]


def benchmark_columns(models: dict) -> list[tuple[str, str]]:
    """(task, metric) pairs in the order the scores list them, over every model."""
    columns = []
    for entry in models.values():
        for task, metrics in (entry.get("scores") or {}).items():
            columns += [(task, metric) for metric in metrics if (task, metric) not in columns]
    return columns


def evaluation_benchmarks(*, evaluation: Evaluation) -> dict:
    """The evaluation's lm-eval scores (results["benchmarks"], workers/benchmarks.py): {"columns",
    "by_model": {model version id: {"cells", "error"}}, "tasks", "limit"}; {} when none were run."""
    stored = evaluation.results.get("benchmarks") or {}
    if not stored:
        return {}
    columns = benchmark_columns(stored.get("models", {}))
    by_model = {int(mv_id): {"cells": benchmark_cells(entry.get("scores") or {}, columns), "error": entry.get("error", "")}
                for mv_id, entry in stored.get("models", {}).items()}
    return {"columns": columns, "by_model": by_model, "tasks": stored.get("tasks", []), "limit": stored.get("limit")}


def project_benchmarks(*, project, model_version_ids) -> dict:
    """Each model version's latest lm-eval scores over the project's evaluations: {"columns",
    "by_model": {id: cells}} (a later evaluation's score of a task replaces an earlier one)."""
    latest: dict[int, dict] = {}
    for results in (Evaluation.objects.filter(project=project, results__has_key="benchmarks").order_by("-id")
                    .values_list("results", flat=True)):
        for mv_id, entry in (results.get("benchmarks") or {}).get("models", {}).items():
            mine = latest.setdefault(int(mv_id), {})
            for task, metrics in (entry.get("scores") or {}).items():
                mine.setdefault(task, metrics)
    wanted = {int(i) for i in model_version_ids}
    latest = {mv_id: scores for mv_id, scores in latest.items() if mv_id in wanted}
    columns = benchmark_columns({str(k): {"scores": v} for k, v in latest.items()})
    return {"columns": columns, "by_model": {mv_id: benchmark_cells(scores, columns) for mv_id, scores in latest.items()}}


def leaderboard_for(*, project, source: str = "all") -> dict | None:
    """The stored fit for `source`, each row with its score and interval placed on a 0-100 scale for
    the forest plot (`at`, `from`, `width`)."""
    board = Leaderboard.objects.filter(project=project).first()
    if board is None:
        return None
    fit = board.scores.get(source, {"rows": [], "pairs": 0, "error": ""})
    rows = [dict(row) for row in fit["rows"]]
    # A model scored on prompts its lineage trained on is never ranked as if clean (integrity.py).
    overlap = integrity.project_contamination(project=project, model_version_ids=[r["model_version"] for r in rows])
    rank = 0
    for row in rows:
        row["contaminated"] = overlap.get(row["model_version"], 0)
        rank += not row["contaminated"]
        row["rank"] = None if row["contaminated"] else rank
    if rows:
        # Pad the axis a little (and give identical scores some room) so no interval sits on the edge.
        low, high = min(r["low"] for r in rows), max(r["high"] for r in rows)
        pad = max(0.1 * (high - low), 0.25)
        low, high = low - pad, high + pad
        span = high - low
        for row in rows:
            row.update({"at": 100 * (row["score"] - low) / span, "from": 100 * (row["low"] - low) / span,
                        "width": 100 * (row["high"] - row["low"]) / span})
    # Standard benchmark scores (lm-eval, with standard errors) beside the Bradley-Terry strength.
    benchmarks = project_benchmarks(project=project, model_version_ids=[r["model_version"] for r in rows])
    for row in rows:
        row["benchmarks"] = benchmarks["by_model"].get(int(row["model_version"])) or benchmark_cells({}, benchmarks["columns"])
    return {"computed_at": board.computed_at, "source": source, "pairs": fit["pairs"], "error": fit["error"],
            "rows": rows, "benchmark_columns": benchmarks["columns"]}


def word_diff(reference: str, text: str) -> list:
    """[(changed, piece)] for `text` against `reference`, word by word (whitespace kept), so a
    template can mark what differs without ever treating the text as HTML."""
    ref_words, words = re.split(r"(\s+)", reference), re.split(r"(\s+)", text)
    segments = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=ref_words, b=words, autojunk=False).get_opcodes():
        if j2 > j1:
            segments.append((op != "equal", "".join(words[j1:j2])))
    return segments


def _verdicts(comparison) -> dict:
    humans = [j.verdict for j in comparison.judgements.all() if j.source == JudgementSource.HUMAN]
    out = {"human": humans}
    for judgement in comparison.judgements.all():
        if judgement.source != JudgementSource.HUMAN:
            out[judgement.source] = {"verdict": judgement.verdict, "probability": judgement.probability}
    return out


def _outcomes(verdicts: dict) -> dict:
    outcomes = {s: OUTCOME.get(verdicts[s]["verdict"]) for s in ("teacher", "oracle") if s in verdicts}
    if verdicts["human"]:
        outcomes["human"] = majority_outcome([OUTCOME.get(v, 0.5) for v in verdicts["human"]])
    return outcomes


def side_by_side_prompt_ids(*, evaluation: Evaluation, family="", search=""):
    """The evaluation's prompt ids in page order (a queryset: the page counts and slices it in SQL,
    walking the (evaluation, prompt) index), filtered by task family and text search (prompt or
    answers). The verdict filters need each row's outcomes, so side_by_side_rows applies those."""
    outputs = EvaluationOutput.objects.filter(evaluation=evaluation)
    if family:
        outputs = outputs.filter(prompt__metadata__family=family)
    if search.strip():
        needle = search.strip()
        outputs = outputs.filter(Q(prompt__text__icontains=needle) | Q(prompt_id__in=EvaluationOutput.objects.filter(
            evaluation=evaluation, generation__text__icontains=needle).values("prompt_id")))
    return outputs.order_by("prompt_id").values_list("prompt_id", flat=True).distinct()


def side_by_side_rows(*, evaluation: Evaluation, disagreements=False, losses=False, family="", search="", prompt_ids=None) -> list:
    """One row per prompt: the teacher's answer and each candidate's answer with its verdicts and
    heatmap signals (the word diffs come from `side_by_side_diffs`, for the page shown only). Filters: judge sources that disagree on some
    candidate, a candidate that lost by some source, task family, text search (prompt or answers).
    prompt_ids: only these prompts (one page of side_by_side_prompt_ids), so a page costs its rows."""
    outputs = (EvaluationOutput.objects.filter(evaluation=evaluation)
               .select_related("generation", "model_version", "prompt").order_by("prompt_id", "model_version_id"))
    comparisons = Comparison.objects.filter(evaluation=evaluation)
    if prompt_ids is not None:
        outputs, comparisons = outputs.filter(prompt_id__in=prompt_ids), comparisons.filter(prompt_id__in=prompt_ids)
    comparisons = {(c.prompt_id, c.items.all()[0].generation.model_version_id): c for c in
                   comparisons.prefetch_related("items__generation", "judgements")}
    by_prompt = defaultdict(list)
    for output in outputs:
        by_prompt[output.prompt_id].append(output)
    rows, needle = [], search.strip().lower()
    for prompt_outputs in by_prompt.values():
        prompt = prompt_outputs[0].prompt
        teacher = next((o for o in prompt_outputs if o.model_version_id == evaluation.teacher_id), None)
        candidates = []
        for output in prompt_outputs:
            if output.model_version_id == evaluation.teacher_id:
                continue
            comparison = comparisons.get((prompt.id, output.model_version_id))
            verdicts = _verdicts(comparison) if comparison else {"human": []}
            outcomes = _outcomes(verdicts)
            candidates.append({"output": output, "verdicts": verdicts, "outcomes": outcomes,
                               "lost": any(v == 0.0 for v in outcomes.values()),
                               "disagree": len(set(outcomes.values())) > 1})
        row = {"prompt": prompt, "family": prompt.metadata.get("family", ""), "teacher": teacher,
               "candidates": candidates}
        if disagreements and not any(c["disagree"] for c in candidates):
            continue
        if losses and not any(c["lost"] for c in candidates):
            continue
        if family and row["family"] != family:
            continue
        texts = [prompt.text, *(o.generation.text for o in prompt_outputs)]
        if needle and not any(needle in t.lower() for t in texts):
            continue
        rows.append(row)
    return rows


def side_by_side_diffs(rows) -> None:
    """Adds each candidate's word diff against the teacher to the given rows (one page of them:
    diffing every row before paging cost seconds on a large evaluation)."""
    for row in rows:
        reference = row["teacher"].generation.text if row["teacher"] else ""
        for candidate in row["candidates"]:
            candidate["diff"] = word_diff(reference, candidate["output"].generation.text)


def evaluation_families(*, evaluation: Evaluation) -> list:
    families = Prompt.objects.filter(pk__in=EvaluationOutput.objects.filter(evaluation=evaluation).values("prompt_id")) \
        .values_list("metadata__family", flat=True).distinct()
    return sorted(f for f in families if isinstance(f, str) and f)


def latest_student(*, project):
    return ModelVersion.objects.filter(project=project).exclude(role=ModelRole.TEACHER).order_by("-created_at", "-id").first()


def fresh_prompts(*, loop_round: LoopRound) -> list:
    """Prompts of the round's set that no comparison of the project has used yet (held-out eval
    prompts excluded), oldest first."""
    used = Comparison.objects.filter(project=loop_round.project).values("prompt_id")
    prompts = (Prompt.objects.filter(prompt_set=loop_round.prompt_set).exclude(split="eval")
               .exclude(pk__in=used).order_by("id"))
    return list(prompts[:loop_round.prompt_count])


def loop_rounds(*, project) -> list:
    """Rounds with live counts: comparisons, human judgements in, and the gain in student oracle
    accuracy over the previous finished round."""
    rounds = list(LoopRound.objects.filter(project=project).select_related("student", "teacher").annotate(
        comparison_count=Count("comparisons", distinct=True),
        judgements_in=Count("comparisons__judgements", filter=Q(comparisons__judgements__source=JudgementSource.HUMAN),
                            distinct=True)).order_by("number"))
    previous = None
    for loop_round in rounds:
        accuracy = loop_round.stats.get("student_oracle_accuracy")
        loop_round.gain = (accuracy - previous) if accuracy is not None and previous is not None else None
        if accuracy is not None:
            previous = accuracy
    return rounds


def loop_queue(*, loop_round: LoopRound) -> list:
    """The round's comparisons in queue order (largest disagreement first)."""
    return list(Comparison.objects.filter(loop_round=loop_round).order_by("-priority", "id"))


def evaluation_summary(*, evaluation: Evaluation) -> list:
    """Rows for the results table: the teacher, then each candidate, with its stored stats and its
    win rates against the teacher per judge source (teacher-judge, oracle, human)."""
    stats = evaluation.results.get("models", {})
    versus = evaluation.results.get("versus_teacher", {})
    contamination = integrity.evaluation_contamination(evaluation=evaluation)
    rows = [{"model_version": evaluation.teacher, "is_teacher": True, "stats": stats.get(str(evaluation.teacher_id), {}),
             "versus": {}, "contamination": contamination[evaluation.teacher_id]}]
    for mv in evaluation.model_versions.order_by("id"):
        win_rates = versus.get(str(mv.id), {})
        rows.append({"model_version": mv, "is_teacher": False, "stats": stats.get(str(mv.id), {}),
                     "versus": [_placed(source, win_rates[source]) for source in ("teacher", "oracle", "human")
                                if source in win_rates], "contamination": contamination[mv.id]})
    return rows


def _placed(source: str, rate: dict) -> dict:
    """A win rate with its point and interval in percent, for the forest plot."""
    return {"source": source, **rate, "at": 100 * rate["rate"], "from": 100 * rate["low"],
            "width": 100 * (rate["high"] - rate["low"])}


def evaluation_human_progress(*, evaluation: Evaluation) -> dict:
    """How many of the evaluation's comparisons are open to people and how many have a human verdict."""
    comparisons = Comparison.objects.filter(evaluation=evaluation)
    return {"open": comparisons.filter(status="open").count(),
            "judged": comparisons.filter(judgements__source=JudgementSource.HUMAN).distinct().count(),
            "total": comparisons.count()}
