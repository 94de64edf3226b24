"""ml/experiments.py: pair building by the simulated annotator, judge agreement, the shared step budget
of every row, judgement counts, the mean and CI over seeds, the table, and (slow) the claims the
distillation table makes, on a small demo world and against equal-budget baselines only."""
import math

import pytest
import torch

from ml.demo.annotator import SimulatedAnnotator
from ml.demo.build import BuildSpec, build_demo
from ml.demo.tasks import Task
from ml.experiments import (ExperimentConfig, ExperimentResult, annotate_pairs, format_table, judge_agreement,
                            equal_budget_baseline, judgements_used, label, load_demo_world, mean_ci,
                            method_config, paired_delta, run_experiment, summarize)
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


def test_every_row_gets_the_same_seed_schedule_and_step_budget():
    exp = ExperimentConfig(learning_rate=1e-3, steps=30, batch_size=4, seed=7)
    plus = method_config("adpa_plus", exp)
    rows = ("seq_kd", "kd", "taid", "sft_chosen", "dpo", "dpo_rpo", "dckd", "adpa")
    configs = [method_config(m, exp) for m in rows] + [plus.dckd, plus.adpa]
    for config in configs:
        assert (config.learning_rate, config.max_steps, config.batch_size, config.grad_accum, config.seed,
                config.lr_scheduler) == (1e-3, 30, 4, 1, 7, "cosine")
    assert method_config("sft_chosen_2x", exp).max_steps == 60 and method_config("dckd_2x", exp).max_steps == 60
    with pytest.raises(ValueError, match="unknown experiment method"):
        method_config("magic", exp)


def test_dpo_rows_differ_only_in_lr_or_the_nll_anchor(tmp_path):
    from ml.recipes.dpo import trl_config

    exp = ExperimentConfig(learning_rate=3e-3, dpo_learning_rate=1e-4, rpo_alpha=0.5, steps=10)
    plain, low, anchored = (method_config(m, exp) for m in ("dpo", "dpo_low_lr", "dpo_rpo"))
    assert (plain.learning_rate, plain.rpo_alpha) == (3e-3, 0.0)
    assert (low.learning_rate, low.rpo_alpha) == (1e-4, 0.0)
    assert (anchored.learning_rate, anchored.rpo_alpha, anchored.beta) == (3e-3, 0.5, 0.1)
    # TRL 1.x: the RPO anchor is the "sft" loss added to "sigmoid" with weight rpo_alpha
    trl = trl_config(anchored, tmp_path, 40)
    assert (trl.loss_type, trl.loss_weights, trl.max_steps) == (["sigmoid", "sft"], [1.0, 0.5], 10)
    assert trl_config(plain, tmp_path, 40).loss_type == ["sigmoid"]


def test_judgements_are_counted_only_for_rows_that_see_them():
    stats = {"pairs": 90, "dropped_ties": 10}
    assert [judgements_used(r, stats) for r in ("sft", "seq_kd", "kd", "taid", "teacher")] == [0] * 5
    assert [judgements_used(r, stats) for r in ("sft_chosen", "dpo_rpo", "adpa_plus", "dckd_2x", "teacher_dpo")] \
        == [100] * 5


def test_mean_ci_is_the_student_t_interval():
    # mean 0.6, sample sd 0.1, t(0.975, 2 dof) = 4.302653 -> half-width 4.302653 * 0.1 / sqrt(3)
    stat = mean_ci([0.5, 0.7, 0.6])
    assert stat["mean"] == pytest.approx(0.6) and stat["ci95"] == pytest.approx(0.248414, abs=1e-6)
    assert stat["n"] == 3 and math.isnan(mean_ci([0.4])["ci95"])


def test_load_demo_world_names_what_is_missing(tmp_path):
    (tmp_path / "teacher").mkdir()
    with pytest.raises(FileNotFoundError, match="student, prompts/train.jsonl, prompts/eval.jsonl"):
        load_demo_world(tmp_path)


def _result(seed_acc: dict, judgements: int = 0) -> ExperimentResult:
    accuracy = {row: {"overall": acc, "by_family": {"compare": acc, "sort": 1.0}, "judgements": judgements}
                for row, acc in seed_acc.items()}
    return ExperimentResult(config={}, pairs={}, accuracy=accuracy, runs={"dckd": {"steps": 12}})


def test_summary_and_table_give_mean_and_ci_over_seeds():
    results = [_result({"sft": 0.5, "dckd": acc}, judgements=40) for acc in (0.5, 0.7, 0.6)]
    summary = summarize(results, families={"flawed": ["compare"], "clean": ["sort"]})
    assert summary["dckd"]["overall"]["mean"] == pytest.approx(0.6)
    assert summary["dckd"]["groups"]["clean"]["mean"] == 1.0 and summary["dckd"]["steps"] == 12
    table = format_table(summary)
    assert "| DCKD | 12 | 40 | 60.0 ± 24.8 | 60.0 ± 24.8 | 100.0 ± 0.0 |  |" in table  # no same-steps baseline
    assert "| SFT student (start) |  | 40 | 50.0 ± 0.0 |" in table


def test_rows_are_compared_with_sft_on_chosen_at_the_same_steps_seed_by_seed():
    runs = {"sft_chosen": {"steps": 10}, "dckd": {"steps": 10}, "sft_chosen_2x": {"steps": 20},
            "adpa_plus": {"steps": 20}}
    results = []
    for sft_chosen, dckd in ((0.40, 0.45), (0.60, 0.64), (0.50, 0.56)):
        result = _result({"sft": 0.1, "sft_chosen": sft_chosen, "dckd": dckd, "sft_chosen_2x": 0.7,
                          "adpa_plus": 0.7})
        results.append(ExperimentResult({}, {}, result.accuracy, runs))
    summary = summarize(results)
    assert [equal_budget_baseline(r, summary) for r in ("sft", "sft_chosen", "dckd", "adpa_plus")] == \
        [None, None, "sft_chosen", "sft_chosen_2x"]
    # differences 0.05, 0.04, 0.06: mean 0.05, sd 0.01 -> half-width 4.302653 * 0.01 / sqrt(3) = 0.0248
    delta = paired_delta(summary, "dckd", "sft_chosen")
    assert delta["mean"] == pytest.approx(0.05) and delta["ci95"] == pytest.approx(0.0248414, abs=1e-6)
    assert "| DCKD | 10 | 0 | 55.0 ± 23.7 | +5.0 ± 2.5 |" in format_table(summary)  # unpaired CI: 23.7
    assert label("sft_chosen_2x") == "SFT on chosen, 2x steps"


SMALL_WORLD = BuildSpec(seed=0, sft_tasks=8000, eval_prompts=320, train_prompts=600, teacher_steps=700,
                        student_steps=200)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3 min on two idle cores; far longer while other work shares them
def test_judgements_correct_the_teacher_flaw_that_sequence_kd_copies(tmp_path):
    """The distillation table's claims, on a small world, against equal-budget baselines only: SFT on
    the judged chosen answers fixes the flawed families that sequence-level KD on the same teacher
    answers copies; DPO at the students' lr collapses while the NLL-anchored DPO at that lr does not;
    DCKD's teacher KL terms fall during training."""
    torch.set_num_threads(1)  # two threads on two shared cores spin more than they compute
    figures = build_demo(tmp_path / "demo", SMALL_WORLD, progress=False)
    flawed = list(figures["teacher_errors"]["families"])
    world = load_demo_world(tmp_path / "demo")
    exp = ExperimentConfig(seed=0, num_train=300, steps=150, teacher_steps=100,
                           methods=("seq_kd", "sft_chosen", "dpo", "dpo_rpo", "dckd"))
    result = run_experiment(world, exp, tmp_path / "work", log=print)
    acc = result.accuracy

    def on_flawed(row):
        return sum(acc[row]["by_family"][f] for f in flawed) / len(flawed)

    assert on_flawed("teacher") <= 0.3, acc  # the flaw is learnt: greedy, the teacher is mostly wrong there
    assert on_flawed("sft_chosen") >= on_flawed("seq_kd") + 0.2, acc
    assert acc["sft_chosen"]["overall"] > acc["seq_kd"]["overall"], acc
    assert acc["dpo"]["overall"] < 0.5 * acc["dpo_rpo"]["overall"], acc
    assert acc["dckd"]["judgements"] == acc["sft_chosen"]["judgements"] > 0 == acc["seq_kd"]["judgements"]
    first, last = result.runs["dckd"]["first"], result.runs["dckd"]["last"]
    assert last["kl/chosen"] < first["kl/chosen"] and last["kl/rejected"] < first["kl/rejected"]
