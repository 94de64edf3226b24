"""Checkpoint evaluation beside a training run. The gpu worker runs one task at a time, so a
checkpoint evaluation queued behind the run would only start once the run ended; instead the
training task starts this evaluator, a background thread in the same process, and hands it each
checkpoint the recipe writes. The thread measures the checkpoint with ml.checkpoint_eval on a fixed
held-out sample (the teacher's greedy answers are generated once, on its first checkpoint) and
stores the result through webapp.training.checkpoint_evals, which publishes it to the run page.
Training never waits for it (torch releases the GIL in its kernels), and cancel stays the run's:
the evaluator checks the run's cancel flag between its own steps and drops pending work."""
import logging
import queue
import threading

from django.db import close_old_connections, connection

from webapp.training import checkpoint_evals, services
from webapp.training.models import TrainingRun

log = logging.getLogger(__name__)
_DONE = object()


def oracle_for(prompt):
    """The demo oracle's scorer for a prompt (from its imported family/answer, else parsed from its
    text), or None where the prompt is not a demo task."""
    from ml.demo.tasks import Task, oracle_score, task_from_prompt

    meta = prompt.metadata or {}
    task = Task(meta["family"], prompt.text, str(meta["answer"])) if meta.get("family") and "answer" in meta \
        else (task_from_prompt(prompt.text) if prompt.text else None)
    if task is None:
        return None, ""
    return (lambda response: float(oracle_score(task, response))), task.family


class CheckpointEvaluator:
    """Evaluates checkpoints every `run.eval_every_steps` steps (and the final one) in a thread."""

    def __init__(self, run: TrainingRun):
        self.run_id, self.every = run.id, run.eval_every_steps
        self.queued: set[int] = {0}  # the starting student is queued by for_run
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name=f"checkpoint-eval-{run.id}", daemon=True)
        self.thread.start()

    @classmethod
    def for_run(cls, run: TrainingRun):
        """An evaluator when the run asks for checkpoint evaluations, else None."""
        if not run.eval_every_steps or run.eval_prompt_set_id is None:
            return None
        evaluator = cls(run)
        if run.resume_from_id is None:
            evaluator.jobs.put((0, run.student.source))  # the starting point every curve is read against
        return evaluator

    def submit(self, step: int, path, *, final: bool = False) -> None:
        """Queue the checkpoint at `step` (in `path`) when it is due: its step is a multiple of the
        cadence, or it is the final checkpoint. Checkpoints may arrive in any order. Never blocks."""
        if (final or step % self.every == 0) and step not in self.queued:
            self.queued.add(step)
            self.jobs.put((step, str(path)))

    def close(self, *, timeout: float | None = None) -> None:
        """Finish the queued evaluations (or drop them when the run was cancelled), then stop."""
        self.jobs.put(_DONE)
        self.thread.join(timeout)

    def _cancelled(self) -> bool:
        return services.run_cancel_requested(run_id=self.run_id)

    def _work(self) -> None:
        context = None
        try:
            while (job := self.jobs.get()) is not _DONE:
                if self._cancelled():
                    continue
                context = context or self._context()
                self._evaluate(context, *job)
        except Exception:  # an evaluation failing must not fail the run; the log says why
            log.exception("checkpoint evaluation of run %s failed", self.run_id)
        finally:
            connection.close()

    def _context(self) -> dict:
        """The fixed held-out sample with the teacher's greedy answers, the teacher and the judge."""
        from ml.checkpoint_eval import HeldOutItem, holdout_sample
        from ml.generation import generate
        from ml.judges import GenerativeJudge, LikelihoodJudge
        from ml.modeling import load_model

        close_old_connections()
        run = TrainingRun.objects.select_related("teacher", "teacher_sft", "eval_prompt_set").get(id=self.run_id)
        prompts = list(run.eval_prompt_set.prompts.filter(split="eval").order_by("id"))
        prompts = holdout_sample(prompts, run.eval_sample_size, seed=run.id)
        if not prompts:
            raise ValueError(f"prompt set {run.eval_prompt_set.name!r} has no eval-split prompts")
        source = run.teacher or run.teacher_sft
        if getattr(source, "is_endpoint", False):
            source = None  # an endpoint teacher has no weights here: the sample goes without teacher answers or judge
        teacher = load_model(source.source, revision=source.revision or None) if source else None
        inputs = [p.messages or p.text for p in prompts]
        teacher_answers = [o[0].text for o in generate(teacher.model, teacher.tokenizer, inputs, k=1, temperature=0.0,
                                                       max_new_tokens=run.config.get("max_new_tokens", 32))] \
            if teacher else [""] * len(prompts)
        sample = []
        for prompt, text, answer in zip(prompts, inputs, teacher_answers):
            score, family = oracle_for(prompt)
            sample.append(HeldOutItem(text, answer, score=score, family=family))
        judge = None
        if teacher and run.eval_judge == "likelihood":
            judge = LikelihoodJudge(teacher.model, teacher.tokenizer)
        elif teacher and run.eval_judge == "generative":
            judge = GenerativeJudge(teacher.model, teacher.tokenizer)
        return {"sample": sample, "teacher": teacher, "judge": judge, "max_new_tokens": run.config.get("max_new_tokens", 32)}

    def _evaluate(self, context: dict, step: int, path: str) -> None:
        from ml.checkpoint_eval import evaluate_checkpoint
        from ml.modeling import load_model

        student = load_model(path)
        teacher = context["teacher"]
        result = evaluate_checkpoint(student.model, teacher.model if teacher else None, student.tokenizer,
                                     context["sample"], step=step, judge=context["judge"],
                                     max_new_tokens=context["max_new_tokens"], should_stop=self._cancelled,
                                     teacher_tokenizer=teacher.tokenizer if teacher else None)
        if result is not None:
            close_old_connections()
            checkpoint_evals.checkpoint_eval_record(run_id=self.run_id, step=step, metrics=result.to_dict())
