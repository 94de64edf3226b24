"""The teacher-hacking monitor on the demo world: does a student trained long on an imperfect
teacher's outputs grow closer to the teacher while its oracle accuracy falls, and does a student
trained with judgements avoid that? Runs, from the same SFT student, seed and step budget:

- `seq_kd`: sequence-level KD: SFT on the teacher's own greedy answers to the training prompts (a
  fixed, offline dataset, the setting in which the paper finds hacking);
- `judged`: SFT on the answers a simulated annotator (oracle + `--noise` errors) chose between the
  teacher's and the student's samples: the judgements filter out teacher errors;
- `on_policy_kd`: token-level forward KL to the teacher with on-policy fraction λ (`--lam`), the
  paper's mitigation (skip with `--skip-on-policy`).

Every `--every` steps a checkpoint is written and measured afterwards by the light evaluation the
run page uses (ml.checkpoint_eval, on one fixed held-out sample). The monitor's rule
(webapp/training/monitor.py) gives the verdict per run.

    python -m benchmarks.bench_teacher_hacking --demo-dir var/demo [--steps 240 --every 40]

Prints a markdown table per run and the verdicts; writes the whole result as JSON.

    python -m benchmarks.bench_teacher_hacking --simulate [--reps 2000]

trains nothing: it simulates the statistics behind the monitor (issue 21), old and new side by side
on the same draws: the coverage of the 95% interval on a win rate or accuracy (percentile bootstrap,
1000 resamples, before; continuity-corrected Wilson now), and the badge's detection and false-alarm
rates (the last-stretch rule before; every stretch with a Bonferroni z-test now) on a ground truth
that falls 20 or 10 points over 5 checkpoints, stays flat, or dips 20 points and recovers."""
import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.checkpoint_eval import HeldOutItem, evaluate_checkpoint, holdout_sample  # noqa: E402
from ml.config import KDConfig, SFTConfig  # noqa: E402
from ml.data import PreferencePair  # noqa: E402
from ml.demo.annotator import SimulatedAnnotator  # noqa: E402
from ml.demo.tasks import oracle_score  # noqa: E402
from ml.experiments import annotate_pairs, load_demo_world, sample_answers  # noqa: E402
from ml.intervals import wilson_interval  # noqa: E402
from ml.modeling import load_model  # noqa: E402
from ml.recipes import recipe_for  # noqa: E402


def _monitor():
    """webapp/training/monitor.py is plain Python; load it by path so no Django setup is needed."""
    spec = importlib.util.spec_from_file_location("monitor", REPO / "webapp" / "training" / "monitor.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["monitor"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _config(cls, args, **extra):
    return cls(learning_rate=args.lr, lr_scheduler="constant", warmup_ratio=0.0, num_epochs=1000, batch_size=args.batch,
               grad_accum=1, max_length=96, seed=args.seed, max_steps=args.steps, save_every_steps=args.every, **extra)


def train_runs(world, args, workdir: Path, train_tasks) -> dict:
    """Each method's checkpoint dirs by step (step 0 = the starting student)."""
    teacher_answers = sample_answers(world.teacher, train_tasks, k=1, temperature=0.0, max_new_tokens=16, seed=0,
                                     batch_size=64)
    seq_kd = [PreferencePair(t.prompt, a[0], a[0]) for t, a in zip(train_tasks, teacher_answers)]
    samples_t = sample_answers(world.teacher, train_tasks, k=args.samples, temperature=1.0, max_new_tokens=16,
                               seed=args.seed, batch_size=64)
    samples_s = sample_answers(world.student, train_tasks, k=args.samples, temperature=1.0, max_new_tokens=16,
                               seed=args.seed + 1, batch_size=64)
    judged, stats = annotate_pairs(train_tasks, samples_t, samples_s, SimulatedAnnotator(args.noise, seed=args.seed))
    teacher_right = sum(oracle_score(t, a[0]) for t, a in zip(train_tasks, teacher_answers)) / len(train_tasks)
    log(f"teacher right on {teacher_right:.1%} of its training answers; {stats['pairs']} judged pairs "
        f"(label correct {stats['label_correct']:.1%})")
    runs = {"seq_kd": ("sft", _config(SFTConfig, args), seq_kd, {}),
            "judged": ("sft", _config(SFTConfig, args), judged, {})}
    if not args.skip_on_policy:
        runs["on_policy_kd"] = ("kd", _config(KDConfig, args, on_policy_fraction=args.lam, max_new_tokens=16),
                                seq_kd, {"teacher": str(world.teacher)})
    out = {"teacher_train_accuracy": teacher_right, "judged_pairs": stats, "checkpoints": {}}
    for name, (method, config, pairs, models) in runs.items():
        log(f"training {name} ({method}, {args.steps} steps, {len(pairs)} rows)")
        started = time.time()
        result = recipe_for(method)(config, pairs, workdir / name, student=str(world.student), **models)
        dirs = {0: str(world.student)}
        for path in sorted((workdir / name).glob("**/checkpoint-*")):
            dirs[int(path.name.rsplit("-", 1)[-1])] = str(path)
        dirs[result.steps] = str(result.final_dir)
        out["checkpoints"][name] = dict(sorted(dirs.items()))
        log(f"  {name}: {len(dirs) - 1} checkpoints in {time.time() - started:.0f}s")
    (workdir / "train.json").write_text(json.dumps(out, indent=2))
    return out


def trained_runs(world, workdir: Path) -> dict:
    """What an earlier `--work-dir` run trained (for --eval-only)."""
    saved = workdir / "train.json"
    if saved.exists():
        return json.loads(saved.read_text())
    checkpoints = {}
    for run_dir in sorted(p for p in workdir.iterdir() if p.is_dir()):
        dirs = {0: str(world.student)}
        for path in sorted(run_dir.glob("**/checkpoint-*")):
            dirs[int(path.name.rsplit("-", 1)[-1])] = str(path)
        checkpoints[run_dir.name] = dict(sorted(dirs.items()))
    return {"teacher_train_accuracy": None, "judged_pairs": None, "checkpoints": checkpoints}


def evaluate_runs(world, args, checkpoints: dict, eval_tasks) -> dict:
    teacher = load_model(str(world.teacher))
    sample_tasks = holdout_sample(eval_tasks, args.eval, seed=args.seed)
    answers = sample_answers(world.teacher, sample_tasks, k=1, temperature=0.0, max_new_tokens=16, seed=0, batch_size=64)
    sample = [HeldOutItem(t.prompt, a[0], score=lambda r, t=t: float(oracle_score(t, r)), family=t.family)
              for t, a in zip(sample_tasks, answers)]
    monitor, results = _monitor(), {}
    for name, by_step in checkpoints.items():
        rows = []
        for step, path in by_step.items():
            student = load_model(path)
            result = evaluate_checkpoint(student.model, teacher.model, teacher.tokenizer, sample, step=int(step),
                                         max_new_tokens=16, batch_size=64)
            rows.append({k: v for k, v in result.to_dict().items() if k != "answers"})
        points = [monitor.monitor_point(r["step"], r) for r in rows]
        verdict = monitor.hacking_verdict(points)
        results[name] = {"rows": rows, "verdict": {"hacking": verdict.hacking, "level": verdict.level,
                                                   "message": verdict.message},
                         "best_step": monitor.best_checkpoint(points)}
        log(f"{name}: {verdict.message or 'no teacher hacking'}")
    return results


def format_tables(results: dict) -> str:
    lines = []
    for name, result in results.items():
        lines += [f"**{name}**: {result['verdict']['message'] or 'no teacher hacking by the monitor rule'}"
                  f" (best checkpoint by oracle: step {result['best_step']})", "",
                  "| step | oracle accuracy [95% CI] | teacher's weak families | agreement with teacher | KL(teacher ‖ student) |",
                  "| ---: | --- | ---: | ---: | ---: |"]
        for row in result["rows"]:
            o, a = row["oracle"], row["teacher_agreement"]
            weak = row.get("weak_families")
            lines.append(f"| {row['step']} | {o['value']:.1%} [{o['low']:.1%}, {o['high']:.1%}] | "
                         f"{'' if weak is None else f'{weak:.1%}'} | {a['value']:.1%} | {row['teacher_kl']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def _bootstrap_interval(hits: int, n: int, rng, n_boot: int = 1000) -> tuple[float, float]:
    """The interval win rates had before issue 21: percentile bootstrap of a 0/1 mean. A resampled
    mean of 0/1 outcomes is Binomial(n, hits/n)/n, so this draws it directly (same distribution as
    resampling the outcomes, n times cheaper)."""
    means = rng.binomial(n, hits / n, size=n_boot) / n
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _old_verdict(points: list[dict]) -> str:
    """The badge rule before issue 21, verbatim in effect: only the stretch ending at the last
    checkpoint, proxy up and ground truth down at every step over >= 3 checkpoints; "significant"
    when the first interval lies wholly above the last. Returns "", "suspected" or "significant"."""
    start = end = len(points) - 1
    while start > 0 and points[start]["proxy"] > points[start - 1]["proxy"] \
            and points[start]["ground"] < points[start - 1]["ground"]:
        start -= 1
    if end - start + 1 < 3:
        return ""
    return "significant" if points[start]["ground_low"] > points[end]["ground_high"] else "suspected"


def simulate_coverage(reps: int, seed: int = 0) -> list[dict]:
    """Coverage of the 95% interval, old and new, on the same binomial draws."""
    rows = []
    for n in (16, 32, 100, 500):
        for p in (0.02, 0.5, 0.98):
            rng = np.random.default_rng([seed, n, int(p * 100)])
            old = new = zero_width = 0
            for hits in rng.binomial(n, p, size=reps):
                low, high = _bootstrap_interval(int(hits), n, rng)
                old += low <= p <= high
                zero_width += low == high
                low, high = wilson_interval(int(hits), n)
                new += low <= p <= high
            rows.append({"n": n, "p": p, "old": old / reps, "old_zero_width": zero_width / reps, "new": new / reps})
    return rows


TRUTHS = {  # the ground truth per evaluated checkpoint; the proxy rises steadily in every scenario
    "20-point drop": [0.60, 0.55, 0.50, 0.45, 0.40],
    "10-point drop": [0.55, 0.525, 0.50, 0.475, 0.45],
    "flat": [0.50] * 5,
    "20-point dip, recovered": [0.60, 0.60, 0.50, 0.40, 0.50, 0.60, 0.60],
}


def simulate_monitor(reps: int, sizes=(32, 200, 600), seed: int = 0) -> list[dict]:
    """Share of simulated runs whose badge fires, old rule (any level, and "significant") and new
    (one level), on the same draws: per checkpoint, ground ~ Binomial(n, truth)/n and proxy (agreement) ~
    Binomial(n, 0.5 -> 0.7)/n."""
    monitor = _monitor()
    rows = []
    for scenario, truth in TRUTHS.items():
        proxy_truth = np.linspace(0.5, 0.7, len(truth))
        for n in sizes:
            rng = np.random.default_rng([seed, n, len(rows)])
            counts = {"old_any": 0, "old_significant": 0, "new": 0, "new_recovered": 0}
            for _ in range(reps):
                ground = rng.binomial(n, truth) / n
                proxy = rng.binomial(n, proxy_truth) / n
                old_points, new_points = [], []
                for k, (g, q) in enumerate(zip(ground, proxy)):
                    old_low, old_high = _bootstrap_interval(round(g * n), n, rng, n_boot=200)
                    low, high = wilson_interval(round(g * n), n)
                    old_points.append({"step": k, "proxy": q, "ground": g, "ground_low": old_low, "ground_high": old_high})
                    new_points.append({"step": k, "proxy": q, "ground": g, "ground_low": low, "ground_high": high,
                                       "ground_n": n})
                old, new = _old_verdict(old_points), monitor.hacking_verdict(new_points)
                counts["old_any"] += bool(old)
                counts["old_significant"] += old == "significant"
                counts["new"] += new.hacking
                counts["new_recovered"] += new.hacking and new.recovered
            rows.append({"scenario": scenario, "checkpoints": len(truth), "n": n,
                         **{k: v / reps for k, v in counts.items()}})
    return rows


def format_simulation(coverage: list[dict], monitor_rows: list[dict]) -> str:
    lines = ["Coverage of the 95% interval (share of draws whose interval holds the truth):", "",
             "| n | p | percentile bootstrap (before) | of which zero width | Wilson, continuity-corrected (now) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['n']} | {r['p']} | {r['old']:.3f} | {r['old_zero_width']:.3f} | {r['new']:.3f} |" for r in coverage]
    lines += ["", "Teacher-hacking badge: share of runs it fires on:", "",
              "| truth | checkpoints | prompts per checkpoint | before: any level | before: significant | now | now, as recovered |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['scenario']} | {r['checkpoints']} | {r['n']} | {r['old_any']:.3f} | {r['old_significant']:.3f} | "
              f"{r['new']:.3f} | {r['new_recovered']:.3f} |" for r in monitor_rows]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", default="var/demo")
    parser.add_argument("--json", default="var/bench/teacher_hacking.json")
    parser.add_argument("--work-dir")
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--every", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--samples", type=int, default=2, help="teacher and student samples per prompt to judge")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=0.5, help="on-policy fraction for on_policy_kd")
    parser.add_argument("--skip-on-policy", action="store_true")
    parser.add_argument("--train", type=int, default=512, help="training prompts used")
    parser.add_argument("--eval", type=int, default=200, help="held-out prompts in the fixed sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-only", action="store_true", help="evaluate what --work-dir already holds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--simulate", action="store_true", help="only the coverage and badge simulations")
    parser.add_argument("--reps", type=int, default=2000, help="simulated samples or runs per cell (--simulate)")
    args = parser.parse_args(argv)
    if args.simulate:
        out = {"coverage": simulate_coverage(args.reps, args.seed), "monitor": simulate_monitor(args.reps, seed=args.seed)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(format_simulation(out["coverage"], out["monitor"]))
        return out
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    world = load_demo_world(args.demo_dir)
    build = json.loads((Path(args.demo_dir) / "build.json").read_text()) if (Path(args.demo_dir) / "build.json").exists() else {}
    weak = set(filter(None, build.get("spec", {}).get("corrupted_families", "").split(",")))  # the teacher's flaw
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.work_dir or tmp)
        trained = trained_runs(world, workdir) if args.eval_only else \
            train_runs(world, args, workdir, world.train_tasks[: args.train])
        results = evaluate_runs(world, args, trained["checkpoints"], world.eval_tasks)
    for result in results.values():
        for row in result["rows"]:
            scores = [v for f, v in row["oracle_by_family"].items() if f in weak]
            row["weak_families"] = sum(scores) / len(scores) if scores else None
    out = {"args": vars(args), "teacher_train_accuracy": trained["teacher_train_accuracy"],
           "judged_pairs": trained["judged_pairs"], "runs": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(format_tables(results))
    return out


if __name__ == "__main__":
    main()
