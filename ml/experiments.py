"""The distillation experiment on the demo world, shared by benchmarks/bench_distillation.py and its
slow test. Per seed: teacher and student sample k answers to the training prompts; a simulated
annotator (oracle plus noise) turns each teacher/student answer pair into a preference pair; the
teacher gets its DPO stage on those pairs (pi_sft -> pi_dpo); then every student method starts from
the same SFT student with the same seed and the same number of optimizer steps, and is scored by
greedy oracle accuracy on the held-out prompts. Rows that need no judgements (sequence-level KD on
the teacher's own answers, token-level KD, TAID) see the same teacher answers the annotator saw.
Over seeds, `summarize` gives each row's mean and 95% confidence interval."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ml.config import ADPAConfig, ADPAPlusConfig, DCKDConfig, DPOConfig, KDConfig, SFTConfig, TAIDConfig
from ml.data import PreferencePair, SFTExample, read_jsonl
from ml.demo.annotator import SimulatedAnnotator
from ml.demo.tasks import Task, oracle_score
from ml.generation import generate
from ml.judges import ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs
from ml.metrics import oracle_accuracy
from ml.modeling import load_model
from ml.recipes import recipe_for

DOUBLE = "_2x"
# row -> (recipe, training data): "teacher" = the teacher's sampled answers (no judgements),
# "pairs" = the annotated preference pairs. A name ending in _2x runs the row with twice the steps.
ROWS = {
    "seq_kd": ("sft", "teacher"), "kd": ("kd", "teacher"), "taid": ("taid", "teacher"),
    "sft_chosen": ("sft", "pairs"), "dpo": ("dpo", "pairs"), "dpo_low_lr": ("dpo", "pairs"),
    "dpo_rpo": ("dpo", "pairs"), "dckd": ("dckd", "pairs"), "adpa": ("adpa", "pairs"),
    "adpa_plus": ("adpa_plus", "pairs"),
}
LABELS = {"sft": "SFT student (start)", "seq_kd": "sequence-level KD on teacher answers",
          "kd": "token-level KD (forward KL to pi_sft) on teacher answers", "taid": "TAID on teacher answers",
          "sft_chosen": "SFT on chosen", "dpo": "DPO (student lr)", "dpo_low_lr": "DPO (low lr)",
          "dpo_rpo": "DPO + NLL anchor (rpo_alpha)", "dckd": "DCKD", "adpa": "ADPA",
          "adpa_plus": "ADPA+ (DCKD then ADPA)", "teacher": "teacher (pi_sft)",
          "teacher_dpo": "teacher after DPO (pi_dpo)"}
NOT_TRAINED = ("sft", "teacher", "teacher_dpo")


def label(row: str) -> str:
    base = row.removesuffix(DOUBLE)
    return LABELS.get(base, base) + (", 2x steps" if row.endswith(DOUBLE) else "")


@dataclass(frozen=True)
class DemoWorld:
    """A built demo world: teacher (pi_sft) and SFT student model dirs, train and held-out tasks."""

    teacher: Path
    student: Path
    train_tasks: list
    eval_tasks: list


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment's knobs. The released learning rates (5e-7) are for 7B models; these tiny
    models need far larger steps, hence 3e-3 for the students and 1e-4 for the teacher's DPO stage
    (full fine-tuning, AdamW, cosine, 10% warm-up). Plain DPO collapses a small student at 3e-3, so
    it also runs at `dpo_learning_rate` and, at 3e-3, with the NLL anchor `rpo_alpha`."""

    noise: float = 0.1  # simulated annotator error rate
    seed: int = 0
    samples: int = 4  # teacher and student answers per training prompt (one pair per sample index)
    temperature: float = 1.0
    max_new_tokens: int = 12
    num_train: int = 0  # training prompts used (0 = all)
    num_eval: int = 0  # held-out prompts scored (0 = all)
    batch_size: int = 16
    steps: int = 400  # optimizer steps of every row (ADPA+: per stage, so 2x; rows named *_2x: 2x)
    max_length: int = 96
    learning_rate: float = 3e-3  # student methods (the demo student's own SFT used 3e-3)
    dpo_learning_rate: float = 1e-4  # the "DPO (low lr)" row
    rpo_alpha: float = 1.0  # the "DPO + NLL anchor" row
    student_beta: float = 0.1
    teacher_learning_rate: float = 1e-4  # teacher DPO stage
    teacher_beta: float = 0.01
    teacher_steps: int = 300
    alpha: float = 0.1  # DCKD alpha_w = alpha_l, as released
    adpa_weight: float = 1.6
    top_k: int = 50
    methods: tuple = ("seq_kd", "kd", "sft_chosen", "dpo", "dpo_low_lr", "dpo_rpo", "dckd", "adpa", "adpa_plus",
                      "sft_chosen_2x", "dpo_rpo_2x", "dckd_2x")
    judges: bool = False
    gen_batch_size: int = 64


@dataclass
class ExperimentResult:
    config: dict
    pairs: dict  # how the preference pairs came out (counts, label quality)
    accuracy: dict  # row name -> {"overall", "by_family"}
    runs: dict = field(default_factory=dict)  # method -> {"steps", "seconds", "first"/"last" step metrics}
    judges: dict = field(default_factory=dict)  # judge name -> {"agreement", "n"}
    seconds: dict = field(default_factory=dict)  # stage -> wall seconds

    def to_dict(self) -> dict:
        return asdict(self)


def _tasks(path: Path) -> list:
    return [Task(row["family"], row["prompt"], row["answer"]) for row in read_jsonl(path)]


def load_demo_world(demo_dir) -> DemoWorld:
    """The world `python -m ml demo build --out DIR` wrote: DIR/{teacher,student,prompts/*.jsonl}."""
    demo_dir = Path(demo_dir)
    missing = [p for p in ("teacher", "student", "prompts/train.jsonl", "prompts/eval.jsonl")
               if not (demo_dir / p).exists()]
    if missing:
        raise FileNotFoundError(f"{demo_dir} is not a built demo world (missing {', '.join(missing)}); "
                                f"run `python -m ml demo build --out {demo_dir}`")
    return DemoWorld(demo_dir / "teacher", demo_dir / "student", _tasks(demo_dir / "prompts" / "train.jsonl"),
                     _tasks(demo_dir / "prompts" / "eval.jsonl"))


def sample_answers(model_dir, tasks: list, *, k: int, temperature: float, max_new_tokens: int, seed: int,
                   batch_size: int) -> list:
    """k answer texts per task from the model at `model_dir` (temperature 0 = greedy)."""
    loaded = load_model(str(model_dir))
    outputs = generate(loaded.model, loaded.tokenizer, [t.prompt for t in tasks], k=k, temperature=temperature,
                       top_p=1.0, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    return [[o.text for o in samples] for samples in outputs]


def annotate_pairs(tasks: list, teacher_answers: list, student_answers: list,
                   annotator: SimulatedAnnotator) -> tuple[list, dict]:
    """One candidate pair per (task, sample index): the teacher's and the student's answer. The
    annotator's 'a'/'b' makes a PreferencePair; identical answers and 'tie' verdicts are dropped.
    Returns (pairs, stats); stats["label_correct"] is the share of pairs whose chosen answer is right
    and rejected wrong by the oracle (annotator errors and true ties pull it below 1)."""
    pairs, ties, identical, correct, from_teacher = [], 0, 0, 0, 0
    for task, teacher_samples, student_samples in zip(tasks, teacher_answers, student_answers, strict=True):
        for a, b in zip(teacher_samples, student_samples):
            if a.strip() == b.strip():
                identical += 1
                continue
            verdict = annotator.judge(task, a, b)
            if verdict == "tie":
                ties += 1
                continue
            chosen, rejected = (a, b) if verdict == "a" else (b, a)
            pairs.append(PreferencePair(task.prompt, chosen, rejected))
            correct += oracle_score(task, chosen) and not oracle_score(task, rejected)
            from_teacher += verdict == "a"
    n = max(len(pairs), 1)
    return pairs, {"pairs": len(pairs), "dropped_ties": ties, "dropped_identical": identical,
                   "label_correct": correct / n, "chosen_from_teacher": from_teacher / n}


def oracle_eval(model_dir, tasks: list, *, max_new_tokens: int, batch_size: int) -> dict:
    """Greedy answers scored by the oracle: {"overall": share correct, "by_family": {...}}."""
    answers = sample_answers(model_dir, tasks, k=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=0,
                             batch_size=batch_size)
    result = oracle_accuracy(tasks, [a[0] for a in answers], lambda task, text: float(oracle_score(task, text)))
    return {"overall": result.overall, "by_family": result.by_family}


def judge_agreement(judge, tasks: list, answers_a: list, answers_b: list, *, batch_size: int = 32) -> dict:
    """Share of held-out answer pairs the oracle can tell apart (one right, one wrong) on which the
    judge prefers the right one (P(a > b) > 0.5 exactly when a is right)."""
    items, truth = [], []
    for task, samples_a, samples_b in zip(tasks, answers_a, answers_b, strict=True):
        for a, b in zip(samples_a, samples_b):
            a_ok, b_ok = oracle_score(task, a), oracle_score(task, b)
            if a_ok != b_ok:
                items.append(JudgeItem(task.prompt, a, b))
                truth.append(a_ok)
    if not items:
        return {"agreement": float("nan"), "n": 0}
    verdicts = judge_pairs(judge, items, batch_size=batch_size)
    agree = sum((v.p_a_over_b > 0.5) == ok for v, ok in zip(verdicts, truth))
    return {"agreement": agree / len(items), "n": len(items)}


def method_config(method: str, exp: ExperimentConfig):
    """The config a row runs with: every row shares lr, schedule, batch, seed and `exp.steps` optimizer
    steps (twice that for a name ending in "_2x"; ADPA+ runs exp.steps per stage). Only the DPO rows
    differ where their name says: "dpo_low_lr" at exp.dpo_learning_rate, "dpo_rpo" with rpo_alpha."""
    steps = exp.steps
    if method.endswith(DOUBLE):
        method, steps = method[: -len(DOUBLE)], 2 * exp.steps
    # num_epochs is only a ceiling: max_steps ends every run at the same step count.
    shared = dict(learning_rate=exp.learning_rate, lr_scheduler="cosine", warmup_ratio=0.1, num_epochs=1000,
                  max_steps=steps, batch_size=exp.batch_size, grad_accum=1, max_length=exp.max_length,
                  seed=exp.seed)
    if method in ("sft_chosen", "seq_kd"):
        return SFTConfig(**shared)
    if method == "kd":
        return KDConfig(**shared, kind="forward")
    if method == "taid":
        return TAIDConfig(**shared)
    if method == "dpo":
        return DPOConfig(**shared, beta=exp.student_beta)
    if method == "dpo_low_lr":
        return DPOConfig(**{**shared, "learning_rate": exp.dpo_learning_rate}, beta=exp.student_beta)
    if method == "dpo_rpo":
        return DPOConfig(**shared, beta=exp.student_beta, rpo_alpha=exp.rpo_alpha)
    dckd = DCKDConfig(**shared, alpha_w=exp.alpha, alpha_l=exp.alpha, top_k=exp.top_k)
    adpa = ADPAConfig(**shared, weight=exp.adpa_weight, top_k=exp.top_k, max_new_tokens=exp.max_new_tokens)
    if method == "dckd":
        return dckd
    if method == "adpa":
        return adpa
    if method == "adpa_plus":
        return ADPAPlusConfig(dckd=dckd, adpa=adpa)
    raise ValueError(f"unknown experiment method {method!r} (known: {', '.join(ROWS)}, each also as NAME_2x)")


def teacher_dpo_config(exp: ExperimentConfig) -> DPOConfig:
    """The teacher's DPO stage (ALGORITHMS.md §5 pipeline step 2): beta 0.01 from pi_sft."""
    return DPOConfig(learning_rate=exp.teacher_learning_rate, lr_scheduler="cosine", warmup_ratio=0.1,
                     num_epochs=1000, max_steps=exp.teacher_steps, batch_size=exp.batch_size, grad_accum=1,
                     max_length=exp.max_length, seed=exp.seed, beta=exp.teacher_beta)


def teacher_examples(tasks: list, teacher_answers: list) -> list:
    """Every sampled teacher answer as an SFT target: the data of the rows that use no judgement."""
    return [SFTExample(task.prompt, answer) for task, answers in zip(tasks, teacher_answers, strict=True)
            for answer in answers]


def train_student(method: str, exp: ExperimentConfig, pairs: list, *, student, teacher_dpo, teacher_sft,
                  workdir: Path, teacher_data: list | None = None):
    """Run one row from `student`; returns the recipe's TrainResult."""
    config = method_config(method, exp)
    recipe_name, data_name = ROWS[method.removesuffix(DOUBLE)]
    data = teacher_data if data_name == "teacher" else pairs
    if not data:
        raise ValueError(f"{method} needs {'teacher answers' if data_name == 'teacher' else 'preference pairs'}")
    models = {}
    if recipe_name in ("kd", "taid"):
        models = {"teacher": teacher_sft}  # the teacher as it is: no judgement reaches these rows
    if recipe_name in ("dckd", "adpa", "adpa_plus"):
        models = {"teacher": teacher_dpo, "cache_dir": workdir / "signals"}
    if recipe_name in ("adpa", "adpa_plus"):
        models["teacher_sft"] = teacher_sft
    return recipe_for(recipe_name)(config, data, workdir / method, student=student, **models)


def _subset(tasks: list, n: int) -> list:
    return tasks[:n] if n else list(tasks)


def judgements_used(row: str, pair_stats: dict) -> int:
    """Annotator verdicts behind a row: every verdict asked for (ties included) for a row trained on the
    pairs or on pi_dpo, none for the start, the teacher and the rows on the teacher's own answers."""
    if row == "teacher_dpo" or ROWS.get(row.removesuffix(DOUBLE), (None, None))[1] == "pairs":
        return pair_stats["pairs"] + pair_stats["dropped_ties"]
    return 0


def run_experiment(world: DemoWorld, exp: ExperimentConfig, workdir, *,
                   log: Callable[[str], None] = print) -> ExperimentResult:
    """One seed of the table: pairs, teacher DPO stage, every row in exp.methods, oracle accuracy,
    and (exp.judges) the implicit-reward and likelihood judges' agreement with the oracle."""
    workdir, seconds = Path(workdir), {}
    train_tasks, eval_tasks = _subset(world.train_tasks, exp.num_train), _subset(world.eval_tasks, exp.num_eval)
    sample = dict(k=exp.samples, temperature=exp.temperature, max_new_tokens=exp.max_new_tokens,
                  batch_size=exp.gen_batch_size)

    started = time.perf_counter()
    teacher_answers = sample_answers(world.teacher, train_tasks, seed=exp.seed, **sample)
    student_answers = sample_answers(world.student, train_tasks, seed=exp.seed + 1, **sample)
    pairs, pair_stats = annotate_pairs(train_tasks, teacher_answers, student_answers,
                                       SimulatedAnnotator(exp.noise, seed=exp.seed))
    teacher_data = teacher_examples(train_tasks, teacher_answers)
    pair_stats["teacher_answers"] = len(teacher_data)
    pair_stats["teacher_answers_right"] = sum(oracle_score(e.prompt, e.response) for e in teacher_data) / len(teacher_data)
    seconds["pairs"] = time.perf_counter() - started
    log(f"seed {exp.seed} pairs: {pair_stats} ({seconds['pairs']:.0f}s)")
    if not pairs:
        raise RuntimeError("the annotator kept no pairs: teacher and student answer alike everywhere")

    started = time.perf_counter()
    teacher_run = recipe_for("dpo")(teacher_dpo_config(exp), pairs, workdir / "teacher_dpo", student=world.teacher)
    teacher_dpo = teacher_run.final_dir
    seconds["teacher_dpo"] = time.perf_counter() - started
    log(f"teacher DPO stage: {teacher_run.steps} steps ({seconds['teacher_dpo']:.0f}s)")

    runs, finals = {}, {}
    for method in exp.methods:
        started = time.perf_counter()
        result = train_student(method, exp, pairs, student=world.student, teacher_dpo=teacher_dpo,
                               teacher_sft=world.teacher, workdir=workdir, teacher_data=teacher_data)
        seconds[method] = time.perf_counter() - started
        finals[method] = result.final_dir
        runs[method] = {"steps": result.steps, "seconds": seconds[method],
                        "first": result.history[0] if result.history else {}, "last": result.metrics}
        log(f"{method}: {result.steps} steps, loss {result.metrics.get('loss')} ({seconds[method]:.0f}s)")

    started = time.perf_counter()
    scored = {"sft": world.student, **finals, "teacher": world.teacher, "teacher_dpo": teacher_dpo}
    evaluate = dict(max_new_tokens=exp.max_new_tokens, batch_size=exp.gen_batch_size)
    accuracy = {name: oracle_eval(path, eval_tasks, **evaluate) for name, path in scored.items()}
    for name, row in accuracy.items():
        row["judgements"] = judgements_used(name, pair_stats)
    seconds["evaluation"] = time.perf_counter() - started
    log("accuracy: " + ", ".join(f"{n} {a['overall']:.3f}" for n, a in accuracy.items()))

    judges = {}
    if exp.judges:
        started = time.perf_counter()
        judges = teacher_judges(world, teacher_dpo, eval_tasks, exp)
        seconds["judges"] = time.perf_counter() - started
        log(f"judges: {judges}")
    config = {**asdict(exp), "methods": list(exp.methods), "train_prompts": len(train_tasks),
              "eval_prompts": len(eval_tasks)}
    return ExperimentResult(config, pair_stats, accuracy, runs, judges, seconds)


def teacher_judges(world: DemoWorld, teacher_dpo, eval_tasks: list, exp: ExperimentConfig) -> dict:
    """Agreement with the oracle on held-out teacher-vs-student answer pairs, for the implicit-reward
    judge (pi_dpo, pi_sft, beta = the teacher DPO stage's) and the likelihood judge (pi_sft)."""
    sample = dict(k=exp.samples, temperature=exp.temperature, max_new_tokens=exp.max_new_tokens,
                  batch_size=exp.gen_batch_size)
    answers_a = sample_answers(world.teacher, eval_tasks, seed=exp.seed + 2, **sample)
    answers_b = sample_answers(world.student, eval_tasks, seed=exp.seed + 3, **sample)
    dpo, sft = load_model(str(teacher_dpo)), load_model(str(world.teacher))
    annotator = SimulatedAnnotator(exp.noise, seed=exp.seed + 4)
    return {
        "implicit_reward": judge_agreement(ImplicitRewardJudge(dpo.model, sft.model, sft.tokenizer,
                                                               beta=exp.teacher_beta),
                                           eval_tasks, answers_a, answers_b),
        "likelihood": judge_agreement(LikelihoodJudge(sft.model, sft.tokenizer), eval_tasks, answers_a, answers_b),
        "simulated_annotator": judge_agreement(_AnnotatorJudge(annotator), eval_tasks, answers_a, answers_b),
    }


class _AnnotatorJudge:
    """The simulated annotator behind the judge interface, as the noise floor to compare judges with
    ('tie' counts as P = 0.5, i.e. no agreement)."""

    def __init__(self, annotator: SimulatedAnnotator):
        self.annotator = annotator

    def judge_batch(self, items):
        from ml.judges import Verdict

        p = {"a": 1.0, "b": 0.0, "tie": 0.5}
        return [Verdict(p[self.annotator.judge(it.prompt, it.response_a, it.response_b)], "simulated", "ab")
                for it in items]


def run_seeds(world: DemoWorld, exp: ExperimentConfig, seeds, workdir, *,
              log: Callable[[str], None] = print) -> list:
    """run_experiment once per seed (the seed drives sampling, annotator noise and training order)."""
    return [run_experiment(world, replace(exp, seed=seed), Path(workdir) / f"seed-{seed}", log=log)
            for seed in seeds]


def mean_ci(values) -> dict:
    """Mean and the half-width of its 95% confidence interval (Student t over the seeds)."""
    from scipy import stats

    values = [float(v) for v in values]
    n, mean = len(values), sum(values) / len(values)
    if n < 2:
        return {"mean": mean, "ci95": float("nan"), "n": n, "values": values}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "ci95": float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)), "n": n, "values": values}


def summarize(results: list, *, families: dict | None = None) -> dict:
    """Per row over seeds: overall accuracy mean_ci, per-family means, steps, judgements (mean), and for
    each named family group (e.g. {"flawed": [...], "clean": [...]}) the mean_ci of its accuracy."""
    summary = {}
    for row in results[0].accuracy:
        per_seed = [r.accuracy[row] for r in results]
        groups = {name: mean_ci([sum(a["by_family"].get(f, 0.0) for f in fams) / len(fams) for a in per_seed])
                  for name, fams in (families or {}).items()}
        by_family = {f: sum(a["by_family"][f] for a in per_seed) / len(per_seed) for f in per_seed[0]["by_family"]}
        summary[row] = {"overall": mean_ci([a["overall"] for a in per_seed]), "groups": groups,
                        "by_family": by_family, "steps": results[0].runs.get(row, {}).get("steps", 0),
                        "judgements": sum(a["judgements"] for a in per_seed) / len(per_seed)}
    return summary


def _pct(stat: dict) -> str:
    ci = "" if math.isnan(stat["ci95"]) else f" ± {100 * stat['ci95']:.1f}"
    return f"{100 * stat['mean']:.1f}{ci}"


def equal_budget_baseline(row: str, summary: dict) -> str | None:
    """The SFT-on-chosen row with the same number of steps as `row` (None for untrained rows)."""
    if row in NOT_TRAINED or row.startswith("sft_chosen"):
        return None
    baseline = "sft_chosen_2x" if row.endswith(DOUBLE) or row == "adpa_plus" else "sft_chosen"
    return baseline if baseline in summary and summary[baseline]["steps"] == summary[row]["steps"] else None


def paired_delta(summary: dict, row: str, baseline: str) -> dict:
    """mean_ci of row minus baseline, seed by seed (the seeds share pairs, so pairing removes their noise)."""
    return mean_ci([a - b for a, b in zip(summary[row]["overall"]["values"], summary[baseline]["overall"]["values"],
                                          strict=True)])


def format_table(summary: dict) -> str:
    """Markdown: one line per row with steps, judgements, accuracy mean ± 95% CI (and per group), and
    the paired difference from SFT on chosen at the same number of steps."""
    groups = list(next(iter(summary.values()))["groups"])
    head = ["model", "steps", "judgements", "held-out accuracy %", *[f"{g} families %" for g in groups],
            "vs SFT on chosen, same steps (paired)"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for row, stat in summary.items():
        baseline = equal_budget_baseline(row, summary)
        delta = paired_delta(summary, row, baseline) if baseline else None
        delta_cell = "" if delta is None else ("+" if delta["mean"] >= 0 else "") + _pct(delta)
        cells = [label(row), str(stat["steps"] or ""), f"{stat['judgements']:.0f}", _pct(stat["overall"]),
                 *[_pct(stat["groups"][g]) for g in groups], delta_cell]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_judges(results: list) -> str:
    """Markdown: each judge's agreement with the oracle (first seed that measured it)."""
    measured = next((r.judges for r in results if r.judges), {})
    lines = ["| judge | agreement with oracle | pairs |", "| --- | ---: | ---: |"]
    for name, row in measured.items():
        lines.append(f"| {name.replace('_', ' ')} | {100 * row['agreement']:.1f}% | {row['n']} |")
    return "\n".join(lines)


def with_overrides(exp: ExperimentConfig, **overrides) -> ExperimentConfig:
    """exp with some fields replaced (None values ignored), for command lines."""
    return replace(exp, **{k: v for k, v in overrides.items() if v is not None})
