"""The closed loop's "next round" job on the gpu queue: the round's student and the teacher answer
fresh prompts greedily, each pair whose answers differ becomes an open comparison (teacher at
position 0) whose queue priority is the teacher-student disagreement (ml.pipeline.disagreement_priority:
the mean per-token KL(teacher || student) over the student's answer), so people see the student's
weakest answers first. The round records the student's and teacher's oracle accuracy on those
prompts. The answers come from the generation backend (settings.GENERATION_BACKEND), as in
evaluations. The lifecycle (claim, heartbeat, cancel, finish) is webapp.lifecycle's. An endpoint
teacher (workers.endpoints) answers through its server; with no teacher weights here, the priority
is the teacher's surprise at the student's answer, from the server's prompt log-probs where it gives
them (else 0, prompt order), and the round says so (`teacher_signals`)."""
from celery import shared_task
from django.conf import settings

from ml.demo.tasks import oracle_score
from ml.modeling import load_model
from ml.pipeline import answers_and_model, disagreement_priority, oracle_task
from ml.token_heatmaps import token_signals
from webapp.evaluation import selectors
from webapp.evaluation.loop_services import JOBS, loop_comparison_store, loop_round_progress
from webapp.evaluation.models import LoopRound
from webapp.evaluation.services import generation_record
from webapp.lifecycle import stop_unless_go
from workers import endpoints


@shared_task(name="workers.tasks.gpu.loop.run_round")
def run_round(round_id: int) -> str:
    return JOBS.run(round_id, lambda loop_round, attempt: {"stats": {**loop_round.stats, **_run(loop_round, attempt)}},
                    stage="starting")


def _input(prompt):
    return prompt.messages or prompt.text


def _accuracy(prompts, texts) -> float | None:
    scored = [oracle_score(task, text) for task, text in
              ((oracle_task(p.text, p.metadata), t) for p, t in zip(prompts, texts)) if task]
    return sum(scored) / len(scored) if scored else None


def _answers(loop_round, attempt, model_version, prompts, stage, offset, total):
    def on_progress(done, _total):
        stop_unless_go(loop_round_progress(loop_round=loop_round, attempt=attempt, stage=stage, done=offset + done,
                                           total=total))

    if endpoints.is_endpoint(model_version):
        outputs, loaded = endpoints.greedy_answers(model_version, [_input(p) for p in prompts], max_new_tokens=64,
                                                   on_progress=on_progress), None
    else:
        outputs, loaded = answers_and_model(model_version.source, [_input(p) for p in prompts],
                                            revision=model_version.revision or None, backend=settings.GENERATION_BACKEND,
                                            load=load_model, max_new_tokens=64, batch_size=16, on_progress=on_progress)
    generations = [generation_record(prompt=p, model_version=model_version, text=o.text, token_count=len(o.token_ids),
                                     token_logps=[round(x, 4) for x in o.token_logps], origin="loop")
                   for p, o in zip(prompts, outputs)]
    return loaded, generations


def _signals(loop_round, teacher, student, inputs, student_texts) -> list[dict]:
    """Per-token teacher signals over the student's answers: from the loaded models, or from an
    endpoint teacher's server (teacher log-probs only), or none when the student is an endpoint."""
    if teacher is not None and student is not None:
        return token_signals(teacher, student, inputs, student_texts)
    if teacher is None and student is not None:
        return endpoints.teacher_signals(loop_round.teacher, student.tokenizer, inputs, student_texts)
    return endpoints.no_teacher_signals(len(inputs))


def _run(loop_round: LoopRound, attempt: int) -> dict:
    prompts = selectors.fresh_prompts(loop_round=loop_round)
    if not prompts:
        raise ValueError(f"no fresh prompts left in {loop_round.prompt_set.name!r}: every one already has a "
                         "comparison; import more prompts")
    total = 2 * len(prompts)
    teacher, teacher_generations = _answers(loop_round, attempt, loop_round.teacher, prompts, "teacher answers", 0, total)
    student, student_generations = _answers(loop_round, attempt, loop_round.student, prompts, "student answers",
                                            len(prompts), total)
    student_texts = [g.text for g in student_generations]
    signals = _signals(loop_round, teacher, student, [_input(p) for p in prompts], student_texts)
    created = 0
    for prompt, mine, theirs, signal in zip(prompts, student_generations, teacher_generations, signals):
        if mine.text.strip() == theirs.text.strip():
            continue  # identical answers teach nothing
        loop_comparison_store(loop_round=loop_round, prompt=prompt, teacher_generation=theirs, student_generation=mine,
                              disagreement=disagreement_priority(signal["mean_kl"], signal["teacher_logp"] or []))
        created += 1
    kls = [s["mean_kl"] for s in signals if s["mean_kl"] is not None]
    return {"prompts": len(prompts), "comparisons": created, "agreed": len(prompts) - created,
            "student_oracle_accuracy": _accuracy(prompts, student_texts),
            "teacher_oracle_accuracy": _accuracy(prompts, [g.text for g in teacher_generations]),
            "mean_disagreement": sum(kls) / len(kls) if kls else None,
            **({"teacher_signals": "endpoint (teacher log-probs only, no KL)"} if teacher is None else {})}
