"""Training step time, measured side by side in one run on one model and one batch shape: DCKD and
ADPA (both reading cached teacher signals, so no teacher runs in their loop) against DPO, and our
DPO recipe (ml/recipes/dpo.py: config mapping, dataset rendering, HooksCallback) against a plain
TRL DPOTrainer given the same model, data and arguments. Each method trains `--warmup + --steps`
optimizer steps per round; the time between consecutive per-step events is one step (data loading,
forward, backward, optimizer, logging), warm-up steps are dropped, and rounds alternate the methods
so that load from other processes on the machine spreads over all of them alike.

    python benchmarks/bench_steps.py [--demo-dir var/demo] [--size student|teacher] [--steps 40]
                                     [--rounds 3] [--threads 1] [--json FILE]

Goals (issue 3): DCKD / DPO <= 1.3, ADPA / DPO <= 1.3, our DPO / plain TRL <= 1.0.

    python benchmarks/bench_steps.py --vs-tree OLD_CHECKOUT [--methods sft,kd,dckd,adpa,taid,redi] ...

compares this tree's recipes with another checkout's (e.g. `git worktree add /tmp/homeloop <commit>`
before the library trainer), method by method on the same models, data, config and batch: each run
is a fresh subprocess with that tree first on sys.path, rounds alternate the trees, and the figure is
the ratio of median step times, this tree / the other (goal, issue 11: <= 1.1).

    python benchmarks/bench_steps.py --vs-tree OLD_CHECKOUT --fixed-cost [--steps 500] [--rounds 3] ...

measures the training loop's fixed cost per step alone, in both trees: the same subprocess per tree
and alternating rounds, but the loss reads one weight of the student and never runs the model, and
the batch is the row indices, so a step is the loop's own work (data loader, callbacks, backward of
one element, clip, optimizer and scheduler step, per-step event). This tree runs `run_trainer`
(ml/recipes/trainer.py), a tree from before the library trainer its `run_loop` (ml/recipes/loop.py).
Printed: median process-CPU ms/step of each tree (per round and over all rounds) and the difference."""
import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.config import ADPAConfig, DCKDConfig, DPOConfig  # noqa: E402
from ml.data import PreferencePair  # noqa: E402
from ml.demo.configs import SIZES, build_model, llama_config, save_model_dir  # noqa: E402
from ml.demo.tasks import generate_tasks  # noqa: E402
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer  # noqa: E402
from ml.modeling import load_model  # noqa: E402
from ml.recipes import adpa, dckd, dpo  # noqa: E402
from ml.recipes.hooks import Hooks  # noqa: E402
from ml.teacher_signals import precompute_adpa, precompute_dckd  # noqa: E402

GOALS = {"dckd / dpo": 1.3, "adpa / dpo": 1.3, "dpo (ours) / dpo (plain TRL)": 1.0}
METHODS = ("dpo_plain_trl", "dpo_plain_trl_defaults", "dpo_ours", "dckd", "adpa")


def preference_pairs(num_pairs: int, seed: int) -> list:
    """Demo tasks with chosen = the checked answer and rejected = the answer of another task of the
    same family, so both sides have the length and vocabulary of real demo answers."""
    tasks = generate_tasks(num_pairs * 2, seed=seed)
    by_family = {}
    for task in tasks[num_pairs:]:
        by_family.setdefault(task.family, []).append(task.answer)
    pairs = []
    for i, task in enumerate(tasks[:num_pairs]):
        others = [a for a in by_family[task.family] if a != task.answer] or [task.answer + " 1"]
        pairs.append(PreferencePair(task.prompt, task.answer, others[i % len(others)]))
    return pairs


def bench_models(demo_dir, workdir: Path, size: str) -> tuple[Path, Path, str]:
    """(student dir, teacher dir, where they came from): the built demo world's student and teacher
    when `demo_dir` holds them and `size` is the student's, else random-init models (`size` for the
    trained model, the demo teacher's size for the signals) with the demo tokenizer."""
    demo = Path(demo_dir) if demo_dir else None
    if size == "student" and demo and (demo / "student").is_dir() and (demo / "teacher").is_dir():
        return demo / "student", demo / "teacher", f"demo build {demo_dir}"
    tokenizer = train_demo_tokenizer(corpus_from_tasks(generate_tasks(350, seed=0)))
    student = save_model_dir(build_model(llama_config(tokenizer, size), seed=2), tokenizer, workdir / "student")
    teacher = save_model_dir(build_model(llama_config(tokenizer, "teacher"), seed=1), tokenizer, workdir / "teacher")
    return student, teacher, f"random-init {size}-sized model (demo tokenizer)"


def step_configs(args) -> dict:
    shared = dict(batch_size=args.batch_size, grad_accum=1, max_length=args.max_length, learning_rate=1e-4,
                  lr_scheduler="constant", warmup_ratio=0.0, max_steps=args.warmup + args.steps, seed=0)
    return {"dpo": DPOConfig(**shared, beta=0.1),
            "dckd": DCKDConfig(**shared, top_k=args.top_k),
            "adpa": ADPAConfig(**shared, top_k=args.top_k, max_new_tokens=args.max_new_tokens)}


def plain_trl_dpo(config: DPOConfig, student_dir: Path, pairs: list, output_dir: Path, on_log, *,
                  trl_defaults: bool) -> None:
    """What a TRL user writes: DPOTrainer on the model, no hooks of ours. `trl_defaults=False` matches
    our recipe's arguments (no gradient checkpointing, fp32 on CPU), so the ratio isolates our wrapper;
    True keeps TRL's own defaults (gradient checkpointing on, bf16 autocast even on CPU)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    class Stamp(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                on_log()

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32, use_safetensors=True)
    rows = [{"prompt": tokenizer.apply_chat_template([{"role": "user", "content": p.prompt}], tokenize=False,
                                                     add_generation_prompt=True),
             "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    args = TRLDPOConfig(output_dir=str(output_dir), beta=config.beta, learning_rate=config.learning_rate,
                        lr_scheduler_type="constant", max_steps=config.max_steps,
                        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=1,
                        max_length=config.max_length, max_grad_norm=config.max_grad_norm, seed=config.seed,
                        precompute_ref_log_probs=True, logging_steps=1, report_to=[], save_strategy="no",
                        use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
                        **({} if trl_defaults else {"gradient_checkpointing": False,
                                                    "bf16": torch.cuda.is_available()}))
    DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
               callbacks=[Stamp()]).train()


def run_method(method: str, configs: dict, world: dict, output_dir: Path) -> list:
    """Train one method for the configured steps; returns (wall, process CPU) stamps of each step's end."""
    stamps = []
    hooks = Hooks(on_progress=lambda event: stamps.append(_now()))
    if method.startswith("dpo_plain_trl"):
        plain_trl_dpo(configs["dpo"], world["student"], world["pairs"], output_dir,
                      lambda: stamps.append(_now()), trl_defaults=method.endswith("defaults"))
    elif method == "dpo_ours":
        dpo.train(configs["dpo"], world["pairs"], output_dir, hooks, student=world["student"])
    elif method == "dckd":
        dckd.train(configs["dckd"], world["pairs"], output_dir, hooks, student=world["student"],
                   signals=world["dckd_signals"])
    elif method == "adpa":
        adpa.train(configs["adpa"], world["pairs"], output_dir, hooks, student=world["student"],
                   signals=world["adpa_signals"])
    return stamps


def quiet_libraries() -> None:
    """No per-dataset progress bars or load reports from datasets/transformers in the printed table."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def step_times(stamps: list, warmup: int, clock: int) -> list:
    """Seconds per step after the warm-up (clock 0 = wall, 1 = this process's CPU time): step i lasts
    from the end of step i-1 to its own end."""
    return [b[clock] - a[clock] for a, b in zip(stamps, stamps[1:])][max(warmup - 1, 0):]


def summarize(times: dict) -> dict:
    out = {}
    for method, values in times.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        out[method] = {"median_ms": 1000 * statistics.median(values), "p25_ms": 1000 * q[0],
                       "p75_ms": 1000 * q[2], "steps": len(values)}
    med = {m: out[m]["median_ms"] for m in out}
    ratios = {"dckd / dpo": med["dckd"] / med["dpo_ours"], "adpa / dpo": med["adpa"] / med["dpo_ours"],
              "dckd / dpo (plain TRL)": med["dckd"] / med["dpo_plain_trl"],
              "adpa / dpo (plain TRL)": med["adpa"] / med["dpo_plain_trl"],
              "dpo (ours) / dpo (plain TRL)": med["dpo_ours"] / med["dpo_plain_trl"],
              "dpo (ours) / dpo (plain TRL, TRL defaults)": med["dpo_ours"] / med["dpo_plain_trl_defaults"]}
    return {"methods": out, "ratios": ratios}


def print_report(report: dict) -> None:
    print(f"\nmodel: {report['setup']['models']}; student {report['setup']['student_params']:,} parameters; "
          f"batch {report['setup']['batch_size']} pairs; {report['setup']['threads']} torch thread(s)")
    for clock, title in (("wall", "wall-clock"), ("cpu", "process CPU time (robust to other load)")):
        print(f"\n{title}")
        print_table(report[clock])


def print_table(report: dict) -> None:
    print(f"{'method':<24}{'median ms/step':>16}{'p25':>10}{'p75':>10}{'steps':>8}")
    for method, row in report["methods"].items():
        print(f"{method:<24}{row['median_ms']:>16.1f}{row['p25_ms']:>10.1f}{row['p75_ms']:>10.1f}{row['steps']:>8}")
    print()
    for name, value in report["ratios"].items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"  (goal <= {goal}: {'met' if value <= goal else 'MISSED'})"
        print(f"{name:<44}{value:>6.2f}x{verdict}")


# What both tree runners start with: the tree first on sys.path, one torch thread count, quiet libraries.
RUNNER_PRELUDE = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["tree"])
import torch
torch.set_num_threads(spec["threads"])
import datasets, transformers
datasets.disable_progress_bars(); transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
"""
TREE_RUNNER = RUNNER_PRELUDE + r"""from ml.config import config_from_dict
from ml.data import load_preference_pairs
from ml.recipes import recipe_for
from ml.recipes.hooks import Hooks
import ml.recipes
assert ml.recipes.__file__.startswith(spec["tree"]), ml.recipes.__file__
stamps = []
hooks = Hooks(on_progress=lambda e: stamps.append((time.perf_counter(), time.process_time())))
recipe_for(spec["method"])(config_from_dict(spec["method"], spec["config"]), load_preference_pairs(spec["data"]),
                           spec["out"], hooks, **spec["models"])
print("@@stamps " + json.dumps(stamps), flush=True)
"""
VS_METHODS = ("sft", "kd", "dckd", "adpa", "taid", "redi")


def tree_models(method: str, world: dict, tree_cache: Path) -> dict:
    """Each recipe's model arguments; each tree fills its own signal cache (their file formats differ)."""
    models = {"student": str(world["student"])}
    if method in ("kd", "taid", "dckd", "adpa"):
        models["teacher"] = str(world["teacher"])
    if method == "adpa":
        models["teacher_sft"] = str(world["teacher"])
    if method in ("dckd", "adpa"):
        models["cache_dir"] = str(tree_cache)
    return models


def run_in_tree(tree: Path, method: str, config: dict, world: dict, out: Path, threads: int) -> list:
    import subprocess

    spec = {"tree": str(tree), "method": method, "config": config, "data": str(world["data"]), "out": str(out),
            "models": tree_models(method, world, world["cache"] / tree.name), "threads": threads}
    done = subprocess.run([sys.executable, "-c", TREE_RUNNER, json.dumps(spec)], capture_output=True, text=True,
                          cwd=tree, env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@stamps ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{method} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("@@stamps "):])


FIXED_COST_RUNNER = RUNNER_PRELUDE + r"""from ml.config import config_from_dict
from ml.recipes.hooks import Hooks
try:
    from ml.recipes.trainer import load_student, run_trainer as run  # the library trainer
except ImportError:
    from ml.recipes.loop import load_student, run_loop as run  # the home loop, before it
import ml.recipes
assert ml.recipes.__file__.startswith(spec["tree"]), ml.recipes.__file__
config = config_from_dict("sft", spec["config"])
loaded = load_student(spec["student"], config)
weight = next(p for p in loaded.model.parameters() if p.requires_grad)

def make_batch(indices):  # the row indices: no tokens to pad, nothing to collate
    return {"rows": torch.tensor(indices), "num_tokens": len(indices)}

def step_loss(model, batch):  # one element of one weight: backward and optimizer touch only it
    return weight.view(-1)[0].square(), {}

stamps = []
hooks = Hooks(on_progress=lambda e: stamps.append((time.perf_counter(), time.process_time())))
run(loaded=loaded, config=config, rows=list(range(spec["num_rows"])), make_batch=make_batch,
    step_loss=step_loss, output_dir=spec["out"], hooks=hooks)
print("@@stamps " + json.dumps(stamps), flush=True)
"""


def run_fixed_cost_in_tree(tree: Path, config: dict, student: Path, num_rows: int, out: Path, threads: int) -> list:
    import subprocess

    spec = {"tree": str(tree), "config": config, "student": str(student), "num_rows": num_rows, "out": str(out),
            "threads": threads}
    done = subprocess.run([sys.executable, "-c", FIXED_COST_RUNNER, json.dumps(spec)], capture_output=True,
                          text=True, cwd=tree, env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@stamps ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"fixed-cost run in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("@@stamps "):])


def main_fixed_cost(args) -> dict:
    """The loop's fixed cost per step, this tree against `args.vs_tree` (see the module docstring)."""
    trees = {"this": Path(__file__).resolve().parent.parent, "other": Path(args.vs_tree).resolve()}
    config = dict(batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length,
                  learning_rate=1e-4, lr_scheduler="constant", warmup_ratio=0.0, max_steps=args.warmup + args.steps,
                  seed=0)
    cpu = {t: [] for t in trees}
    per_round = {t: [] for t in trees}
    with tempfile.TemporaryDirectory(prefix="bench-steps-fixed-") as tmp:
        workdir = Path(tmp)
        student_dir, _, origin = bench_models(args.demo_dir, workdir, args.size)
        for round_ in range(args.rounds):
            for tree in (("this", "other") if round_ % 2 == 0 else ("other", "this")):
                stamps = run_fixed_cost_in_tree(trees[tree], config, student_dir, args.num_pairs,
                                                workdir / f"fixed-{tree}-{round_}", args.threads)
                values = step_times(stamps, args.warmup, 1)
                cpu[tree] += values
                per_round[tree].append(1000 * statistics.median(values))
                print(f"round {round_ + 1}/{args.rounds} {tree:<6} median {per_round[tree][-1]:.2f} ms/step CPU",
                      flush=True)
        params = load_model(str(student_dir), device="cpu").num_parameters
    this, other = (1000 * statistics.median(cpu[t]) for t in ("this", "other"))
    report = {"setup": {"models": origin, "student_params": params, "batch_size": args.batch_size,
                        "grad_accum": args.grad_accum, "threads": args.threads, "steps": args.steps,
                        "warmup": args.warmup, "rounds": args.rounds, "other_tree": str(trees["other"])},
              "fixed_cost": {"this_ms": this, "other_ms": other, "difference_ms": this - other,
                             "this_rounds_ms": per_round["this"], "other_rounds_ms": per_round["other"]}}
    print(f"\nfixed cost per step (loss = one weight, no forward): {origin}, {params:,} parameters; batch "
          f"{args.batch_size} x accum {args.grad_accum}; {args.threads} thread(s); median process CPU over "
          f"{args.rounds} x {args.steps} steps")
    for tree in ("this", "other"):
        rounds = ", ".join(f"{v:.2f}" for v in per_round[tree])
        print(f"{tree + ' tree' if tree == 'this' else str(trees['other']):<32}{1000 * statistics.median(cpu[tree]):>8.2f}"
              f" ms/step  (rounds: {rounds})")
    print(f"{'difference (this - other)':<32}{this - other:>8.2f} ms/step")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def main_vs_tree(args) -> dict:
    """This tree's recipes against `args.vs_tree`'s, per method (see the module docstring)."""
    from ml.data import write_jsonl

    trees = {"this": Path(__file__).resolve().parent.parent, "other": Path(args.vs_tree).resolve()}
    methods = args.methods.split(",")
    config = dict(batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length,
                  learning_rate=1e-4, lr_scheduler="constant", warmup_ratio=0.0, max_steps=args.warmup + args.steps,
                  seed=0)
    extra = {"dckd": {"top_k": args.top_k}, "adpa": {"top_k": args.top_k, "max_new_tokens": args.max_new_tokens}}
    with tempfile.TemporaryDirectory(prefix="bench-steps-vs-") as tmp:
        workdir = Path(tmp)
        student_dir, teacher_dir, origin = bench_models(args.demo_dir, workdir, args.size)
        world = {"student": student_dir, "teacher": teacher_dir, "cache": workdir / "cache",
                 "data": write_jsonl(workdir / "pairs.jsonl", preference_pairs(args.num_pairs, seed=11))}
        times = {(m, t): [] for m in methods for t in trees}
        cpu = {(m, t): [] for m in methods for t in trees}
        for round_ in range(args.rounds):
            for method in methods:
                for tree in (("this", "other") if round_ % 2 == 0 else ("other", "this")):
                    stamps = run_in_tree(trees[tree], method, {**config, **extra.get(method, {})}, world,
                                         workdir / f"{method}-{tree}-{round_}", args.threads)
                    times[method, tree] += step_times(stamps, args.warmup, 0)
                    cpu[method, tree] += step_times(stamps, args.warmup, 1)
                    print(f"round {round_ + 1}/{args.rounds} {method:<6} {tree:<6} median "
                          f"{1000 * statistics.median(step_times(stamps, args.warmup, 0)):.1f} ms/step wall", flush=True)
        params = load_model(str(student_dir), device="cpu").num_parameters
    report = {"setup": {"models": origin, "student_params": params, "batch_size": args.batch_size,
                        "grad_accum": args.grad_accum, "max_length": args.max_length, "threads": args.threads,
                        "steps": args.steps, "rounds": args.rounds, "other_tree": str(trees["other"])},
              "methods": {}}
    print(f"\nmodel: {origin}; {params:,} parameters; batch {args.batch_size} x accum {args.grad_accum}; "
          f"{args.threads} thread(s); this tree vs {trees['other']}")
    print(f"{'method':<8}{'this ms':>10}{'other ms':>10}{'ratio wall':>12}{'ratio CPU':>11}")
    for method in methods:
        this, other = statistics.median(times[method, "this"]), statistics.median(times[method, "other"])
        ratio_cpu = statistics.median(cpu[method, "this"]) / statistics.median(cpu[method, "other"])
        report["methods"][method] = {"this_ms": 1000 * this, "other_ms": 1000 * other, "ratio_wall": this / other,
                                     "ratio_cpu": ratio_cpu}
        print(f"{method:<8}{1000 * this:>10.1f}{1000 * other:>10.1f}{this / other:>11.2f}x{ratio_cpu:>10.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", default="var/demo", help="built demo world (student/, teacher/)")
    parser.add_argument("--size", default="student", choices=sorted(SIZES),
                        help="size of the trained model (the demo student's by default)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per method and round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the methods")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=8, help="length cap of ADPA's student responses")
    parser.add_argument("--num-pairs", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--vs-tree", help="another checkout to compare this tree's recipes with, method by method")
    parser.add_argument("--methods", default=",".join(VS_METHODS), help="methods compared with --vs-tree")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step (with --vs-tree)")
    parser.add_argument("--fixed-cost", action="store_true",
                        help="with --vs-tree: time only the loop's fixed cost per step (loss = one weight, no forward)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    if args.fixed_cost and not args.vs_tree:
        parser.error("--fixed-cost compares two trees: give --vs-tree OLD_CHECKOUT")
    if args.vs_tree:
        return main_fixed_cost(args) if args.fixed_cost else main_vs_tree(args)

    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        workdir = Path(tmp)
        student_dir, teacher_dir, origin = bench_models(args.demo_dir, workdir, args.size)
        configs = step_configs(args)
        pairs = preference_pairs(args.num_pairs, seed=11)
        # Timing does not depend on the signal values, so the one teacher serves as pi_dpo and pi_sft.
        world = {"student": student_dir, "pairs": pairs,
                 "dckd_signals": precompute_dckd(teacher_dir, pairs, cache_dir=workdir / "cache", top_k=args.top_k,
                                                 max_length=args.max_length, batch_size=32),
                 "adpa_signals": precompute_adpa(teacher_dir, teacher_dir, student_dir, pairs,
                                                 cache_dir=workdir / "cache", top_k=args.top_k,
                                                 max_length=args.max_length, max_new_tokens=args.max_new_tokens,
                                                 batch_size=32)}
        times = {m: [] for m in METHODS}
        cpu_times = {m: [] for m in METHODS}
        for round_ in range(args.rounds):
            order = METHODS[round_ % len(METHODS):] + METHODS[: round_ % len(METHODS)]
            for method in order:
                with contextlib.redirect_stdout(io.StringIO()):  # TRL prints every step's log dict
                    stamps = run_method(method, configs, world, workdir / f"{method}-{round_}")
                times[method] += step_times(stamps, args.warmup, 0)
                cpu_times[method] += step_times(stamps, args.warmup, 1)
                print(f"round {round_ + 1}/{args.rounds} {method:<24} median "
                      f"{1000 * statistics.median(step_times(stamps, args.warmup, 0)):.1f} ms/step wall, "
                      f"{1000 * statistics.median(step_times(stamps, args.warmup, 1)):.1f} CPU", flush=True)
        report = {"wall": summarize(times), "cpu": summarize(cpu_times)}
        report["setup"] = {
            "models": origin, "student_params": load_model(str(student_dir), device="cpu").num_parameters,
            "batch_size": args.batch_size, "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
            "rounds": args.rounds, "max_length": args.max_length, "top_k": args.top_k, "torch": torch.__version__}
    print_report(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
