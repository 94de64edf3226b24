"""Evaluation jobs on the gpu queue: every model answers the held-out prompts greedily, each candidate
is compared with the teacher (teacher-judge in both presentation orders, the demo oracle, and/or an
open comparison for people), per-token teacher signals of each candidate answer are stored for the
heatmap, and the results (win rates with Wilson intervals, oracle accuracy, length, KL to the teacher)
and the project's Bradley-Terry leaderboard are computed.
The per-token teacher signals come from ml.token_heatmaps; the result refreshes that human verdicts
trigger run on the default queue (workers.tasks.evaluation). The answers come from the generation
backend (settings.GENERATION_BACKEND: HF over the model the signals need anyway, or vLLM on its own
engine, closed before the HF load). An endpoint teacher (workers.endpoints) answers through its
server and judges generatively there (an answer it gives that cannot be read stores no verdict and
is counted in the results, never as a tie); its weights are never loaded: the heatmap's teacher
log-probs come from the server's prompt log-probs where it gives them, KL to the teacher is left out.
Standard benchmarks (lm-eval tasks, workers/benchmarks.py) run last when the evaluation asks for them."""
from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from ml.demo.tasks import oracle_score
from ml.judges import GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs, verdict_outcome
from ml.metrics import length_stats, model_token_kl, oracle_accuracy
from ml.modeling import load_model
from ml.pipeline import answers_and_model, oracle_task
from ml.token_heatmaps import same_vocab, token_signals
from webapp.catalog.models import ModelVersion
from webapp.evaluation import selectors, services
from webapp.evaluation.models import Evaluation
from webapp.lifecycle import stop_unless_go
from workers import endpoints
from workers.benchmarks import run_for as run_benchmarks_for
from workers.tasks.evaluation import refresh_leaderboard, refresh_results

VERDICT = {1.0: "a", 0.0: "b", 0.5: "tie"}
ORACLE_JUDGE = "oracle:demo-tasks"


@shared_task(name="workers.tasks.gpu.evaluation.run_evaluation")
def run_evaluation(evaluation_id: int) -> str:
    outcome = services.JOBS.run(evaluation_id, lambda evaluation, attempt: _evaluate(evaluation, Progress(evaluation, attempt)),
                                stage="starting")
    if outcome == "succeeded":
        refresh_leaderboard(Evaluation.objects.values_list("project_id", flat=True).get(pk=evaluation_id))
    return outcome


class Progress:
    """Counts work units across stages and publishes them (throttled by batch, not by time); stops
    the job (lifecycle.Stopped) when a cancel was asked or the claim was lost."""

    def __init__(self, evaluation, attempt: int):
        self.evaluation, self.attempt, self.total, self.base = evaluation, attempt, 0, 0

    def stage(self, name: str):
        def on_progress(done: int, _total: int) -> None:
            stop_unless_go(services.JOBS.progress(self.evaluation, attempt=self.attempt, stage=name,
                                                  done=self.base + done, total=self.total))
        return on_progress

    def advance(self, units: int) -> None:
        self.base += units


def prompt_input(prompt):
    return prompt.messages or prompt.text


def demo_task(prompt):
    return oracle_task(prompt.text, prompt.metadata)


def answer(model_version, prompts, *, max_new_tokens: int, batch_size: int, on_progress=None):
    """(greedy answers, the model's HF LoadedModel for signals and judges): ml.pipeline.answers_and_model;
    an endpoint version's answers come from its server, with no LoadedModel (None)."""
    if endpoints.is_endpoint(model_version):
        return endpoints.greedy_answers(model_version, [prompt_input(p) for p in prompts], max_new_tokens=max_new_tokens,
                                        on_progress=on_progress), None
    return answers_and_model(model_version.source, [prompt_input(p) for p in prompts],
                             revision=model_version.revision or None, backend=settings.GENERATION_BACKEND,
                             load=load_model, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             on_progress=on_progress)


def _build_judge(evaluation, teacher, dpo, sft):
    """The teacher-judge; the implicit reward uses the π_dpo and π_sft already loaded for the signals."""
    kind = evaluation.config.get("teacher_judge", "generative")
    if teacher is None:  # an endpoint teacher
        return endpoints.judge(evaluation.teacher, method={"implicit": "implicit_reward"}.get(kind, kind))
    if kind == "likelihood":
        return LikelihoodJudge(teacher.model, teacher.tokenizer)
    if kind == "implicit":
        return ImplicitRewardJudge(dpo.model, sft.model, dpo.tokenizer, beta=float(evaluation.config.get("beta", 0.01)),
                                   sft_tokenizer=sft.tokenizer)
    return GenerativeJudge(teacher.model, teacher.tokenizer)


def _stage_models(evaluation):
    """The teacher after DPO and after SFT, when the evaluation names them (implicit judge, advantage)."""
    ids = evaluation.config.get("teacher_dpo_id"), evaluation.config.get("teacher_sft_id")
    if not all(ids):
        return None, None
    versions = {mv.id: mv for mv in ModelVersion.objects.filter(pk__in=ids)}
    if any(endpoints.is_endpoint(mv) for mv in versions.values()):
        return None, None  # no weights here to read the advantage from
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
    unparseable = 0
    for comparison, verdict in zip(comparisons, verdicts):
        if verdict.details.get("unparseable"):
            unparseable += 1  # an endpoint judge's answer that could not be read: no verdict, not a tie
            continue
        order = [item.generation_id for item in comparison.items.all()]
        services.machine_judgement_store(
            comparison=comparison, source="teacher", judge_name=verdict.judge, judge_model=teacher_mv,
            verdict=VERDICT[verdict_outcome(verdict)], probability=min(1.0, max(0.0, verdict.p_a_over_b)),
            shown_order=order if verdict.order != "both" else [order, order[::-1]],
            details={"order": verdict.order, **verdict.details})
    return unparseable


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
    outputs, student = answer(mv, prompts, **ctx["gen"], on_progress=progress.stage(f"{mv.name} answers"))
    stored = _store_answers(evaluation, mv, prompts, outputs)
    texts, teacher_texts = [s.generation.text for s in stored], [s.generation.text for s in teacher_stored]
    inputs = [prompt_input(p) for p in prompts]
    signals = (token_signals(teacher, student, inputs, texts, dpo=ctx["dpo"], sft=ctx["sft"]) if teacher is not None
               else endpoints.teacher_signals(evaluation.teacher, getattr(student, "tokenizer", None), inputs, texts))
    comparisons = _comparisons(evaluation, prompts, stored, teacher_stored, signals)
    progress.advance(len(prompts))
    stats = {}
    if ctx["judge"] is not None:
        unparseable = _judge(ctx["judge"], evaluation.teacher, prompts, comparisons, texts, teacher_texts, progress)
        stats.update({"teacher_judge_unparseable": unparseable} if unparseable else {})
    if "oracle" in evaluation.judges:
        _oracle(prompts, comparisons, stored, teacher_stored)
    progress.advance(len(prompts))
    stats.update(_model_stats(prompts, stored, None))
    stats["kl_to_teacher"] = (model_token_kl(teacher.model, student.model, teacher.tokenizer, list(zip(inputs, teacher_texts)))
                              if teacher is not None and student is not None and same_vocab(teacher, student) else None)
    return stats


def _evaluate(evaluation: Evaluation, progress: Progress) -> dict:
    config = evaluation.config
    prompts = selectors.evaluation_prompts(evaluation=evaluation)
    if not prompts:
        raise ValueError(f"prompt set {evaluation.prompt_set.name!r} has no prompts in split "
                         f"{config.get('split', 'eval')!r}")
    candidates = list(evaluation.model_versions.order_by("id"))
    progress.total = len(prompts) * (1 + 2 * len(candidates)) + (1 + len(candidates)) * bool(config.get("benchmarks"))
    gen = {"max_new_tokens": int(config.get("max_new_tokens", 64)), "batch_size": int(config.get("batch_size", 16))}
    outputs, teacher = answer(evaluation.teacher, prompts, **gen, on_progress=progress.stage("teacher answers"))
    teacher_stored = _store_answers(evaluation, evaluation.teacher, prompts, outputs)
    progress.advance(len(prompts))
    dpo, sft = _stage_models(evaluation)  # loaded once: the signals and the implicit judge share them
    judge = _build_judge(evaluation, teacher, dpo, sft) if "teacher" in evaluation.judges else None
    ctx = {"prompts": prompts, "teacher": teacher, "teacher_stored": teacher_stored, "progress": progress, "gen": gen,
           "judge": judge, "dpo": dpo, "sft": sft}
    stats = {str(evaluation.teacher_id): _model_stats(prompts, teacher_stored, None)}
    try:
        for mv in candidates:
            stats[str(mv.id)] = _evaluate_candidate(evaluation, mv, ctx)
    finally:
        endpoints.close(judge)  # an endpoint judge's client; in-worker judges hold nothing to close
    services.evaluation_results_store(evaluation=evaluation, results={
        "models": stats, "teacher_judge": getattr(judge, "identity", None), "prompts": len(prompts)})
    refresh_results(evaluation.id)
    # Standard benchmarks (lm-eval) last, once the win rates are on the page: teacher and candidates,
    # the teacher's loaded weights reused, the judge's and stage models let go first.
    ctx = judge = dpo = sft = None
    benchmarks = run_benchmarks_for([evaluation.teacher, *candidates], config, progress.stage("standard benchmarks"),
                                    loaded={evaluation.teacher_id: teacher} if teacher is not None else {})
    if benchmarks:
        services.evaluation_results_store(evaluation=evaluation, results={"benchmarks": benchmarks})
    return {"stage": ""}  # finished: nothing is in progress any more
