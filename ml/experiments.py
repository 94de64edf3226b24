"""The distillation experiment on the demo world, shared by benchmarks/bench_distillation.py and its
slow test: teacher and student sample answers to the training prompts, a simulated annotator (oracle
plus noise) turns each teacher/student answer pair into a preference pair, the teacher gets its DPO
stage on those pairs (pi_sft -> pi_dpo), then every student method starts from the same SFT student
with the same seed and step budget, and each result is scored by greedy oracle accuracy on held-out
prompts. The teacher-as-judge agreement with the oracle is measured on held-out answer pairs."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ml.config import ADPAConfig, ADPAPlusConfig, DCKDConfig, DPOConfig, SFTConfig
from ml.data import PreferencePair, read_jsonl
from ml.demo.annotator import SimulatedAnnotator
from ml.demo.tasks import Task, oracle_score
from ml.generation import generate
from ml.judges import ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs
from ml.metrics import oracle_accuracy
from ml.modeling import load_model
from ml.recipes import recipe_for

STUDENT_METHODS = ("dpo", "dckd", "adpa", "adpa_plus")
DOUBLE = "_2x"
LABELS = {"sft": "SFT only (start)", "sft_chosen": "SFT continued on chosen", "dpo": "DPO", "dckd": "DCKD",
          "adpa": "ADPA", "adpa_plus": "ADPA+ (DCKD then ADPA)", "sft_chosen_2x": "SFT continued on chosen, 2x budget",
          "dckd_2x": "DCKD, 2x budget", "teacher": "teacher (pi_sft)", "teacher_dpo": "teacher after DPO (pi_dpo)"}


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
    (full fine-tuning, AdamW, cosine, 10% warm-up)."""

    noise: float = 0.1  # simulated annotator error rate
    seed: int = 0
    samples: int = 4  # teacher and student answers per training prompt (one pair per sample index)
    temperature: float = 1.0
    max_new_tokens: int = 16
    num_train: int = 0  # training prompts used (0 = all)
    num_eval: int = 0  # held-out prompts scored (0 = all)
    batch_size: int = 16
    epochs: int = 4  # the same budget (epochs over the pairs) for every student method
    max_length: int = 96
    learning_rate: float = 3e-3  # student methods (the demo student's own SFT used 3e-3)
    student_beta: float = 0.1
    teacher_learning_rate: float = 1e-4  # teacher DPO stage
    teacher_beta: float = 0.01
    teacher_epochs: int = 2
    alpha: float = 0.1  # DCKD alpha_w = alpha_l, as released
    adpa_weight: float = 1.6
    top_k: int = 50
    methods: tuple = ("sft_chosen",) + STUDENT_METHODS + ("sft_chosen_2x",)
    judges: bool = True
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
    """The config a method runs with: every student method shares lr, schedule, batch, epochs, seed.
    A name ending in "_2x" runs the method with twice the epochs (ADPA+'s two-stage budget)."""
    epochs = exp.epochs
    if method.endswith(DOUBLE):
        method, epochs = method[: -len(DOUBLE)], 2 * exp.epochs
    shared = dict(learning_rate=exp.learning_rate, lr_scheduler="cosine", warmup_ratio=0.1,
                  num_epochs=epochs, batch_size=exp.batch_size, grad_accum=1, max_length=exp.max_length,
                  seed=exp.seed)
    if method == "sft_chosen":
        return SFTConfig(**shared)
    if method == "dpo":
        return DPOConfig(**shared, beta=exp.student_beta)
    dckd = DCKDConfig(**shared, alpha_w=exp.alpha, alpha_l=exp.alpha, top_k=exp.top_k)
    adpa = ADPAConfig(**shared, weight=exp.adpa_weight, top_k=exp.top_k, max_new_tokens=exp.max_new_tokens)
    if method == "dckd":
        return dckd
    if method == "adpa":
        return adpa
    if method == "adpa_plus":
        return ADPAPlusConfig(dckd=dckd, adpa=adpa)
    raise ValueError(f"unknown experiment method {method!r}")


def teacher_dpo_config(exp: ExperimentConfig) -> DPOConfig:
    """The teacher's DPO stage (ALGORITHMS.md §5 pipeline step 2): beta 0.01 from pi_sft."""
    return DPOConfig(learning_rate=exp.teacher_learning_rate, lr_scheduler="cosine", warmup_ratio=0.1,
                     num_epochs=exp.teacher_epochs, batch_size=exp.batch_size, grad_accum=1,
                     max_length=exp.max_length, seed=exp.seed, beta=exp.teacher_beta)


def train_student(method: str, exp: ExperimentConfig, pairs: list, *, student, teacher_dpo, teacher_sft,
                  workdir: Path):
    """Run one method from `student`; returns the recipe's TrainResult."""
    name = method
    config = method_config(method, exp)
    method = method.removesuffix(DOUBLE)
    recipe = recipe_for("sft" if method == "sft_chosen" else method)
    models = {}
    if method in ("dckd", "adpa", "adpa_plus"):
        models = {"teacher": teacher_dpo, "cache_dir": workdir / "signals"}
    if method in ("adpa", "adpa_plus"):
        models["teacher_sft"] = teacher_sft
    return recipe(config, pairs, workdir / name, student=student, **models)


def _subset(tasks: list, n: int) -> list:
    return tasks[:n] if n else list(tasks)


def run_experiment(world: DemoWorld, exp: ExperimentConfig, workdir, *,
                   log: Callable[[str], None] = print) -> ExperimentResult:
    """The whole table: pairs, teacher DPO stage, every method in exp.methods, oracle accuracy,
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
    seconds["pairs"] = time.perf_counter() - started
    log(f"pairs: {pair_stats} ({seconds['pairs']:.0f}s)")
    if not pairs:
        raise RuntimeError("the annotator kept no pairs: teacher and student answer alike everywhere")

    started = time.perf_counter()
    teacher_run = recipe_for("dpo")(teacher_dpo_config(exp), pairs, workdir / "teacher_dpo", student=world.teacher)
    teacher_dpo = teacher_run.final_dir
    seconds["teacher_dpo"] = time.perf_counter() - started
    log(f"teacher DPO stage: {teacher_run.steps} steps, last {teacher_run.metrics} ({seconds['teacher_dpo']:.0f}s)")

    runs, finals = {}, {}
    for method in exp.methods:
        started = time.perf_counter()
        result = train_student(method, exp, pairs, student=world.student, teacher_dpo=teacher_dpo,
                               teacher_sft=world.teacher, workdir=workdir)
        seconds[method] = time.perf_counter() - started
        finals[method] = result.final_dir
        runs[method] = {"steps": result.steps, "seconds": seconds[method],
                        "first": result.history[0] if result.history else {}, "last": result.metrics}
        log(f"{method}: {result.steps} steps, loss {result.metrics.get('loss')} ({seconds[method]:.0f}s)")

    started = time.perf_counter()
    scored = {"sft": world.student, **finals, "teacher": world.teacher, "teacher_dpo": teacher_dpo}
    evaluate = dict(max_new_tokens=exp.max_new_tokens, batch_size=exp.gen_batch_size)
    accuracy = {name: oracle_eval(path, eval_tasks, **evaluate) for name, path in scored.items()}
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


def format_table(result: ExperimentResult) -> str:
    """Markdown table of oracle accuracy per row (and its gain over the SFT student)."""
    base = result.accuracy["sft"]["overall"]
    lines = ["| model | oracle accuracy | vs SFT | steps |", "| --- | ---: | ---: | ---: |"]
    for name, acc in result.accuracy.items():
        steps = result.runs.get(name, {}).get("steps", "")
        gain = "" if name in ("sft", "teacher", "teacher_dpo") else f"{100 * (acc['overall'] - base):+.1f}"
        lines.append(f"| {LABELS.get(name, name)} | {100 * acc['overall']:.1f}% | {gain} | {steps} |")
    if result.judges:
        lines += ["", "| judge | agreement with oracle | pairs |", "| --- | ---: | ---: |"]
        for name, row in result.judges.items():
            lines.append(f"| {name.replace('_', ' ')} | {100 * row['agreement']:.1f}% | {row['n']} |")
    return "\n".join(lines)


def with_overrides(exp: ExperimentConfig, **overrides) -> ExperimentConfig:
    """exp with some fields replaced (None values ignored), for command lines."""
    return replace(exp, **{k: v for k, v in overrides.items() if v is not None})
