"""Evaluation jobs on the gpu queue: every model answers the held-out prompts greedily, each candidate
is compared with the teacher (teacher-judge in both presentation orders, the demo oracle, and/or an
open comparison for people), per-token teacher signals of each candidate answer are stored for the
heatmap, and the results (win rates with bootstrap CIs, oracle accuracy, length, KL to the teacher)
and the project's Bradley-Terry leaderboard are computed. Also the two refresh tasks that recompute
win rates when human verdicts arrive and the leaderboard on demand.

`token_signals` is model maths that ml/ does not offer yet (per-token teacher log-prob, KL and ADPA
advantage over a given answer); it lives here until ml/ grows an equivalent."""
import logging
from dataclasses import asdict

import torch
from celery import shared_task

from ml.demo.tasks import Task, oracle_score, task_from_prompt
from ml.judges import (GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs,
                       response_batch, verdict_outcome)
from ml.losses.common import IGNORE_INDEX, token_kl
from ml.metrics import bradley_terry, length_stats, model_token_kl, oracle_accuracy, win_rate
from ml.modeling import load_model
from webapp.catalog.models import ModelVersion
from webapp.evaluation import selectors, services
from webapp.evaluation.models import EvalStatus, Evaluation
from webapp.projects.models import Project

log = logging.getLogger(__name__)
VERDICT = {1.0: "a", 0.0: "b", 0.5: "tie"}
ORACLE_JUDGE = "oracle:demo-tasks"


class Cancelled(Exception):
    """The evaluation was cancelled from the UI; stop between batches."""


@shared_task(name="workers.tasks.gpu.evaluation.run_evaluation")
def run_evaluation(evaluation_id: int) -> str:
    if not services.evaluation_claim(evaluation_id=evaluation_id):
        return "not claimed (already running, finished or cancelled)"
    evaluation = Evaluation.objects.select_related("teacher", "project", "prompt_set").get(pk=evaluation_id)
    try:
        _evaluate(evaluation)
    except Cancelled:
        return "cancelled"
    except Exception as error:  # the message is for the researcher; the traceback for the log
        log.exception("evaluation %s failed", evaluation_id)
        services.evaluation_finish(evaluation=evaluation, status=EvalStatus.FAILED, error=f"{type(error).__name__}: {error}")
        return "failed"
    services.evaluation_finish(evaluation=evaluation)
    refresh_leaderboard(evaluation.project_id)
    return "succeeded"


@shared_task(name="workers.tasks.gpu.evaluation.refresh_results")
def refresh_results(evaluation_id: int) -> dict:
    """Win rate of each candidate against the teacher, per judge source, with a bootstrap CI; for a
    finished evaluation (human verdicts arriving) the leaderboard is refitted too."""
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    n_boot = int(evaluation.config.get("n_boot", 1000))
    versus = {str(mv): {source: asdict(win_rate(outcomes, n_boot=n_boot, seed=0))
                        for source, outcomes in sources.items() if outcomes}
              for mv, sources in selectors.evaluation_outcomes(evaluation=evaluation).items()}
    services.evaluation_results_store(evaluation=evaluation, results={"versus_teacher": versus})
    if evaluation.status == EvalStatus.SUCCEEDED:  # a late (human) verdict also moves the leaderboard
        refresh_leaderboard(evaluation.project_id)
    return versus


@shared_task(name="workers.tasks.gpu.evaluation.refresh_leaderboard")
def refresh_leaderboard(project_id: int) -> dict:
    """Bradley-Terry scores (95% bootstrap CI) over every pairwise outcome, per outcome source."""
    project = Project.objects.get(pk=project_id)
    names = dict(ModelVersion.objects.filter(project=project).values_list("id", "name"))
    scores = {}
    for source in selectors.SOURCES:
        pairs = selectors.leaderboard_pairs(project=project, source=source)
        scores[source] = {"rows": [], "pairs": len(pairs), "error": ""}
        if not pairs:
            continue
        games = {}
        for a, b, _ in pairs:
            games[a], games[b] = games.get(a, 0) + 1, games.get(b, 0) + 1
        try:
            fit = bradley_terry(pairs, n_boot=200, seed=0)
        except ValueError as error:
            scores[source]["error"] = str(error)
            continue
        scores[source]["rows"] = sorted(
            ({"model_version": mv, "name": names.get(mv, str(mv)), "score": s.score, "low": s.low, "high": s.high,
              "games": games[mv]} for mv, s in fit.items()), key=lambda row: -row["score"])
    services.leaderboard_store(project=project, scores=scores)
    return scores


class Progress:
    """Counts work units across stages and publishes them (throttled by batch, not by time)."""

    def __init__(self, evaluation, total: int):
        self.evaluation, self.total, self.base = evaluation, total, 0

    def stage(self, name: str):
        def on_progress(done: int, _total: int) -> None:
            if services.evaluation_is_cancelled(evaluation_id=self.evaluation.id):
                raise Cancelled()
            services.evaluation_progress(evaluation=self.evaluation, stage=name, done=self.base + done, total=self.total)
        return on_progress

    def advance(self, units: int) -> None:
        self.base += units


def prompt_input(prompt):
    return prompt.messages or prompt.text


def demo_task(prompt) -> Task | None:
    """The oracle's task for a prompt: from the imported family/answer, else parsed from the text."""
    meta = prompt.metadata or {}
    if meta.get("family") and "answer" in meta:
        return Task(meta["family"], prompt.text, str(meta["answer"]))
    return task_from_prompt(prompt.text) if prompt.text else None


def answer(loaded, prompts, *, max_new_tokens: int, batch_size: int, on_progress=None):
    """Greedy answers, one per prompt (ml.generation)."""
    from ml.generation import generate

    outputs = generate(loaded.model, loaded.tokenizer, [prompt_input(p) for p in prompts], k=1, temperature=0.0,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, on_progress=on_progress)
    return [samples[0] for samples in outputs]


def _logps(model, input_ids, attention_mask):
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits[:, :-1]
    return torch.log_softmax(logits.float(), dim=-1).cpu()  # (B,T-1,V)


def _same_vocab(a, b) -> bool:
    return a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


@torch.inference_mode()
def token_signals(teacher, student, prompts: list, responses: list, *, dpo=None, sft=None, batch_size: int = 8):
    """Per answer, teacher-forced on the answer's tokens (+eos): tokens (decoded one by one),
    teacher_logp = log pi_T(y_t | s_t), kl = KL(pi_T || pi_S) at s_t (same vocabulary only) and
    advantage = log pi_dpo(y_t | s_t) - log pi_sft(y_t | s_t) (ADPA's A at the token taken; only with
    both teacher stages). Also `mean_kl`, the answer's teacher-student disagreement."""
    tokenizer = teacher.tokenizer
    with_kl = student is not None and _same_vocab(teacher, student)
    with_advantage = dpo is not None and sft is not None and _same_vocab(teacher, dpo) and _same_vocab(teacher, sft)
    rows = []
    for start in range(0, len(prompts), batch_size):
        input_ids, attention_mask, labels = response_batch(tokenizer, prompts[start:start + batch_size],
                                                           responses[start:start + batch_size])
        targets = labels[:, 1:]  # (B,T-1): logits at t predict the token at t+1
        mask = targets != IGNORE_INDEX
        index = targets.clamp(min=0).unsqueeze(-1)
        teacher_logps = _logps(teacher.model, input_ids, attention_mask)  # (B,T-1,V)
        picked = teacher_logps.gather(-1, index).squeeze(-1)  # (B,T-1)
        kl = token_kl(teacher_logps, _logps(student.model, input_ids, attention_mask)) if with_kl else None
        advantage = None
        if with_advantage:
            advantage = (_logps(dpo.model, input_ids, attention_mask).gather(-1, index)
                         - _logps(sft.model, input_ids, attention_mask).gather(-1, index)).squeeze(-1)
        for i in range(len(targets)):
            keep = mask[i]
            row = {"tokens": [tokenizer.decode([t]) for t in targets[i][keep].tolist()],
                   "teacher_logp": _rounded(picked[i][keep])}
            row["kl"] = _rounded(kl[i][keep]) if kl is not None else None
            row["advantage"] = _rounded(advantage[i][keep]) if advantage is not None else None
            row["mean_kl"] = sum(row["kl"]) / max(len(row["kl"]), 1) if row["kl"] is not None else None
            rows.append(row)
    return rows


def _rounded(values: torch.Tensor) -> list:
    return [round(float(v), 4) for v in values]


def _build_judge(evaluation, teacher):
    kind = evaluation.config.get("teacher_judge", "generative")
    if kind == "likelihood":
        return LikelihoodJudge(teacher.model, teacher.tokenizer)
    if kind == "implicit":
        dpo, sft = _stage_models(evaluation)
        return ImplicitRewardJudge(dpo.model, sft.model, dpo.tokenizer, beta=float(evaluation.config.get("beta", 0.01)))
    return GenerativeJudge(teacher.model, teacher.tokenizer)


def _stage_models(evaluation):
    """The teacher after DPO and after SFT, when the evaluation names them (implicit judge, advantage)."""
    ids = evaluation.config.get("teacher_dpo_id"), evaluation.config.get("teacher_sft_id")
    if not all(ids):
        return None, None
    versions = {mv.id: mv for mv in ModelVersion.objects.filter(pk__in=ids)}
    return tuple(load_model(versions[i].source, revision=versions[i].revision or None) for i in ids)


def _store_answers(evaluation, model_version, prompts, outputs):
    stored = []
    for prompt, output in zip(prompts, outputs, strict=True):
        task = demo_task(prompt)
        stored.append(services.evaluation_output_store(
            evaluation=evaluation, model_version=model_version, prompt=prompt, text=output.text,
            token_count=len(output.token_ids), token_logps=[round(x, 4) for x in output.token_logps],
            oracle_correct=oracle_score(task, output.text) if task else None))
    return stored


def _model_stats(prompts, stored, tokenizer) -> dict:
    stats = {"length": asdict(length_stats([s.generation.token_count for s in stored]))}
    tasks = [(demo_task(p), s.generation.text) for p, s in zip(prompts, stored)]
    tasks = [(t, text) for t, text in tasks if t is not None]
    if tasks:
        stats["oracle"] = asdict(oracle_accuracy([t for t, _ in tasks], [x for _, x in tasks], oracle_score))
    return stats


def _judge(judge, teacher_mv, prompts, comparisons, candidate_texts, teacher_texts, progress):
    items = [JudgeItem(prompt_input(p), c, t) for p, c, t in zip(prompts, candidate_texts, teacher_texts)]
    verdicts = judge_pairs(judge, items, batch_size=8, on_progress=progress.stage("teacher-judge"))
    for comparison, verdict in zip(comparisons, verdicts):
        order = [item.generation_id for item in comparison.items.all()]
        services.machine_judgement_store(
            comparison=comparison, source="teacher", judge_name=verdict.judge, judge_model=teacher_mv,
            verdict=VERDICT[verdict_outcome(verdict)], probability=min(1.0, max(0.0, verdict.p_a_over_b)),
            shown_order=order if verdict.order != "both" else [order, order[::-1]],
            details={"order": verdict.order, **verdict.details})


def _oracle(prompts, comparisons, candidate_outputs, teacher_outputs):
    for prompt, comparison, mine, theirs in zip(prompts, comparisons, candidate_outputs, teacher_outputs):
        if mine.oracle_correct is None:
            continue
        verdict = "tie" if mine.oracle_correct == theirs.oracle_correct else "a" if mine.oracle_correct else "b"
        services.machine_judgement_store(comparison=comparison, source="oracle", judge_name=ORACLE_JUDGE,
                                         verdict=verdict, details={"a_correct": mine.oracle_correct,
                                                                   "b_correct": theirs.oracle_correct})


def _comparisons(evaluation, prompts, stored, teacher_stored, signals) -> list:
    """Candidate (position 0) vs teacher per prompt; queue priority = the answer's mean token KL."""
    config, comparisons = evaluation.config, []
    for prompt, output, teacher_output, signal in zip(prompts, stored, teacher_stored, signals):
        services.evaluation_output_signals(output=output, signals=signal)
        comparisons.append(services.pair_comparison_store(
            project=evaluation.project, prompt=prompt, first=output.generation, second=teacher_output.generation,
            source="evaluation", evaluation=evaluation, priority=signal["mean_kl"] or 0.0,
            for_humans="humans" in evaluation.judges, required_annotations=int(config.get("required_annotations", 1))))
    return comparisons


def _evaluate_candidate(evaluation, mv, ctx: dict) -> dict:
    """One candidate: answers, token signals, comparisons with the teacher, verdicts, stats."""
    prompts, teacher, teacher_stored, progress = ctx["prompts"], ctx["teacher"], ctx["teacher_stored"], ctx["progress"]
    student = load_model(mv.source, revision=mv.revision or None)
    stored = _store_answers(evaluation, mv, prompts,
                            answer(student, prompts, **ctx["gen"], on_progress=progress.stage(f"{mv.name} answers")))
    texts, teacher_texts = [s.generation.text for s in stored], [s.generation.text for s in teacher_stored]
    inputs = [prompt_input(p) for p in prompts]
    signals = token_signals(teacher, student, inputs, texts, dpo=ctx["dpo"], sft=ctx["sft"])
    comparisons = _comparisons(evaluation, prompts, stored, teacher_stored, signals)
    progress.advance(len(prompts))
    if ctx["judge"] is not None:
        _judge(ctx["judge"], evaluation.teacher, prompts, comparisons, texts, teacher_texts, progress)
    if "oracle" in evaluation.judges:
        _oracle(prompts, comparisons, stored, teacher_stored)
    progress.advance(len(prompts))
    stats = _model_stats(prompts, stored, student.tokenizer)
    stats["kl_to_teacher"] = (model_token_kl(teacher.model, student.model, teacher.tokenizer, list(zip(inputs, teacher_texts)))
                              if _same_vocab(teacher, student) else None)
    return stats


def _evaluate(evaluation: Evaluation) -> None:
    config = evaluation.config
    prompts = selectors.evaluation_prompts(evaluation=evaluation)
    if not prompts:
        raise ValueError(f"prompt set {evaluation.prompt_set.name!r} has no prompts in split "
                         f"{config.get('split', 'eval')!r}")
    candidates = list(evaluation.model_versions.order_by("id"))
    progress = Progress(evaluation, total=len(prompts) * (1 + 2 * len(candidates)))
    gen = {"max_new_tokens": int(config.get("max_new_tokens", 64)), "batch_size": int(config.get("batch_size", 16))}
    teacher = load_model(evaluation.teacher.source, revision=evaluation.teacher.revision or None)
    teacher_stored = _store_answers(evaluation, evaluation.teacher, prompts,
                                    answer(teacher, prompts, **gen, on_progress=progress.stage("teacher answers")))
    progress.advance(len(prompts))
    judge = _build_judge(evaluation, teacher) if "teacher" in evaluation.judges else None
    dpo, sft = _stage_models(evaluation)
    ctx = {"prompts": prompts, "teacher": teacher, "teacher_stored": teacher_stored, "progress": progress, "gen": gen,
           "judge": judge, "dpo": dpo, "sft": sft}
    stats = {str(evaluation.teacher_id): _model_stats(prompts, teacher_stored, teacher.tokenizer)}
    for mv in candidates:
        stats[str(mv.id)] = _evaluate_candidate(evaluation, mv, ctx)
    services.evaluation_results_store(evaluation=evaluation, results={
        "models": stats, "teacher_judge": getattr(judge, "identity", None), "prompts": len(prompts)})
    refresh_results(evaluation.id)
