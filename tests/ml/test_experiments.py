"""ml/experiments.py: pair building by the simulated annotator, judge agreement, the shared budget of
every method, the table, and (slow) the claim the distillation table makes: at fixed seeds, DCKD and
ADPA+ beat the SFT-only student by at least 5 points of oracle accuracy on a small demo world."""
import pytest
import torch

from ml.demo.annotator import SimulatedAnnotator
from ml.demo.build import BuildSpec, build_demo
from ml.demo.tasks import Task
from ml.experiments import (ExperimentConfig, ExperimentResult, annotate_pairs, format_table, judge_agreement,
                            load_demo_world, method_config, run_experiment)
from ml.judges import Verdict

ADD = Task("add", "What is 2 plus 3?", "5")
REVERSE = Task("reverse", "Reverse the words: cat dog", "dog cat")


def test_annotate_pairs_orders_by_the_oracle_and_drops_ties_and_identical():
    teacher = [["5", "5", "6"], ["dog cat", "cat dog"]]
    student = [["4", "5", "7"], ["cat dog", "dog cat"]]
    pairs, stats = annotate_pairs([ADD, REVERSE], teacher, student, SimulatedAnnotator(0.0, seed=0))
    # (5,4): teacher right -> chosen "5"; (5,5) identical; (6,7) both wrong -> tie;
    # (dog cat, cat dog): teacher right; (cat dog, dog cat): student right -> chosen "dog cat".
    assert [(p.chosen, p.rejected) for p in pairs] == [("5", "4"), ("dog cat", "cat dog"), ("dog cat", "cat dog")]
    assert stats == {"pairs": 3, "dropped_ties": 1, "dropped_identical": 1, "label_correct": 1.0,
                     "chosen_from_teacher": pytest.approx(2 / 3)}


def test_annotate_pairs_with_an_always_wrong_annotator_mislabels_or_ties_every_pair():
    pairs, stats = annotate_pairs([ADD] * 20, [["5"]] * 20, [["4"]] * 20, SimulatedAnnotator(1.0, seed=0))
    # truth is "a"; an error picks "b" or "tie" uniformly: no pair may have the right label.
    assert stats["pairs"] + stats["dropped_ties"] == 20 and 0 < stats["pairs"] < 20
    assert stats["label_correct"] == 0.0 and all(p.chosen == "4" for p in pairs)


class _FixedJudge:
    """P(a > b) read from a table keyed by response_a."""

    def __init__(self, p_by_a):
        self.p_by_a = p_by_a

    def judge_batch(self, items):
        return [Verdict(self.p_by_a[it.response_a], "fixed", "ab") for it in items]


def test_judge_agreement_counts_only_pairs_the_oracle_separates():
    answers_a, answers_b = [["5", "4", "6"]], [["4", "5", "7"]]
    # pairs: (5,4) a right, (4,5) b right, (6,7) both wrong -> skipped. The judge says a for "5"
    # (0.9: agrees) and a for "4" (0.8: disagrees): 1 of 2.
    result = judge_agreement(_FixedJudge({"5": 0.9, "4": 0.8, "6": 0.1}), [ADD], answers_a, answers_b)
    assert result == {"agreement": 0.5, "n": 2}


def test_every_student_method_gets_the_same_seed_schedule_and_budget():
    exp = ExperimentConfig(learning_rate=1e-3, epochs=2, batch_size=4, seed=7)
    plus = method_config("adpa_plus", exp)
    configs = [method_config(m, exp) for m in ("sft_chosen", "dpo", "dckd", "adpa")] + [plus.dckd, plus.adpa]
    for config in configs:
        assert (config.learning_rate, config.num_epochs, config.batch_size, config.grad_accum, config.seed,
                config.lr_scheduler) == (1e-3, 2, 4, 1, 7, "cosine")
    assert method_config("dpo", exp).beta == 0.1


def test_load_demo_world_names_what_is_missing(tmp_path):
    (tmp_path / "teacher").mkdir()
    with pytest.raises(FileNotFoundError, match="student, prompts/train.jsonl, prompts/eval.jsonl"):
        load_demo_world(tmp_path)


def test_format_table_shows_gains_over_the_sft_student():
    result = ExperimentResult(config={}, pairs={}, accuracy={"sft": {"overall": 0.5}, "dckd": {"overall": 0.625},
                                                             "teacher": {"overall": 0.9}},
                              runs={"dckd": {"steps": 12}}, judges={"likelihood": {"agreement": 0.75, "n": 8}})
    table = format_table(result)
    assert "| DCKD | 62.5% | +12.5 | 12 |" in table
    assert "| teacher (pi_sft) | 90.0% |  |  |" in table
    assert "| likelihood | 75.0% | 8 |" in table


SMALL_WORLD = BuildSpec(seed=0, sft_tasks=6000, eval_prompts=350, train_prompts=700, teacher_steps=350,
                        student_steps=150)


@pytest.mark.slow
def test_dckd_and_adpa_plus_beat_the_sft_student(tmp_path):
    torch.set_num_threads(1)  # two threads on two shared cores spin more than they compute
    build_demo(tmp_path / "demo", SMALL_WORLD, progress=False)
    world = load_demo_world(tmp_path / "demo")
    exp = ExperimentConfig(seed=0, samples=4, learning_rate=3e-3, epochs=4, methods=("dckd", "adpa_plus"),
                           judges=False)
    result = run_experiment(world, exp, tmp_path / "work", log=lambda line: None)
    sft = result.accuracy["sft"]["overall"]
    assert result.accuracy["teacher"]["overall"] >= sft + 0.15, result.accuracy  # room to distil
    assert result.accuracy["dckd"]["overall"] >= sft + 0.05, result.accuracy
    assert result.accuracy["adpa_plus"]["overall"] >= sft + 0.05, result.accuracy
    first, last = result.runs["dckd"]["first"], result.runs["dckd"]["last"]
    assert last["kl/chosen"] < first["kl/chosen"] and last["kl/rejected"] < first["kl/rejected"]
