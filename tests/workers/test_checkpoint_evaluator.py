"""Checkpoint evaluation beside a training run (workers/checkpoint_evaluator.py), run in this process
on the real database with the tiny demo models: a DPO run asked to evaluate every 6 steps stores the
starting point, the due checkpoint and the final one, each with oracle accuracy, KL and agreement to
the teacher and the judge's win rate; the monitor reads them back; any checkpoint registers as a
model version with its lineage; a run without a held-out set evaluates nothing."""
import json

import pytest

from tests.workers.test_training_tasks import _create, setup, unconsumed_queue  # noqa: F401 (fixtures)
from webapp.catalog.models import PromptSet
from webapp.catalog.services import prompts_bulk_create
from webapp.training import checkpoint_evals
from webapp.training.models import Checkpoint, CheckpointEvaluation, TrainingRun
from workers.tasks.gpu.training import train_run

pytestmark = pytest.mark.django_db(transaction=True)


def _heldout(project, tiny_demo_dir):
    rows = [json.loads(line) for line in (tiny_demo_dir / "prompts" / "eval.jsonl").read_text().splitlines()]
    prompt_set = PromptSet.objects.create(project=project, name="demo-eval")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": r["prompt"], "metadata": r, "split": "eval"} for r in rows])
    return prompt_set


def test_run_evaluates_due_checkpoints_and_the_final_one(setup, tiny_demo_dir):
    run = _create(setup, teacher=setup["teacher"])
    TrainingRun.objects.filter(id=run.id).update(eval_prompt_set=_heldout(setup["project"], tiny_demo_dir),
                                                 eval_every_steps=6, eval_sample_size=8)
    assert train_run(run.id) == "succeeded"
    evaluations = list(CheckpointEvaluation.objects.filter(run=run).order_by("step"))
    assert [e.step for e in evaluations] == [0, 6, 12]  # start, every 6 steps (checkpoints at 3, 6, 9), final
    for evaluation in evaluations:
        metrics = evaluation.metrics
        assert metrics["n"] == 8 and len(metrics["answers"]) == 8
        assert metrics["oracle"]["low"] <= metrics["oracle"]["value"] <= metrics["oracle"]["high"]
        assert metrics["teacher_kl"] > 0 and metrics["win_rate"] is not None
        assert metrics["judge"].startswith("likelihood")
    assert evaluations[1].checkpoint == Checkpoint.objects.get(run=run, step=6)
    monitor = checkpoint_evals.run_monitor(run=run)
    assert [p["step"] for p in monitor["points"]] == [0, 6, 12]
    assert all(p["monitor"]["ground_name"] == "oracle accuracy" for p in monitor["points"])
    assert "answers" not in monitor["points"][0]["metrics"]  # the page gets figures, not every answer
    assert monitor["best_step"] in (0, 6, 12)


def test_checkpoint_registers_on_demand_with_its_lineage(setup):
    run = _create(setup)
    assert train_run(run.id) == "succeeded"
    checkpoint = Checkpoint.objects.get(run=run, step=6)
    version = checkpoint_evals.checkpoint_register(checkpoint=checkpoint)
    assert (version.parent, version.produced_by, version.snapshot, version.method) == (
        setup["student"], run, setup["snapshot"], "dpo")
    assert version.config["checkpoint_step"] == 6 and version.source == checkpoint.path and version.role == "student"
    assert checkpoint_evals.checkpoint_register(checkpoint=checkpoint) == version  # twice: the same version


def test_no_heldout_set_means_no_checkpoint_evaluation(setup):
    run = _create(setup)
    TrainingRun.objects.filter(id=run.id).update(eval_every_steps=6)
    assert train_run(run.id) == "succeeded"
    assert not CheckpointEvaluation.objects.filter(run=run).exists()
