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

Prints a markdown table per run and the verdicts; writes the whole result as JSON."""
import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.checkpoint_eval import HeldOutItem, evaluate_checkpoint, holdout_sample  # noqa: E402
from ml.config import KDConfig, SFTConfig  # noqa: E402
from ml.data import PreferencePair  # noqa: E402
from ml.demo.annotator import SimulatedAnnotator  # noqa: E402
from ml.demo.tasks import oracle_score  # noqa: E402
from ml.experiments import annotate_pairs, load_demo_world, sample_answers  # noqa: E402
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
    args = parser.parse_args(argv)
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
