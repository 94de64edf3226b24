"""The "Run the demo loop" chain (webapp/projects/demo_loop.py) replayed in `ml` directly, to search
its settings quickly on a built demo world: teacher and base student sample k answers to the first N
training prompts; each teacher/student pair with different answers is judged by the likelihood judge
(π_sft); π_dpo is trained from π_sft on the pairs with the run's schedule (β 0.01, as
ml.pipeline.teacher_dpo_stage does); DCKD from the base student with webapp/training/presets.py's
sized config (overridable); greedy oracle accuracy of base and trained student on held-out prompts.
The product path itself is exercised by tests/webapp/projects/test_demo_loop.py.

    python -m benchmarks.bench_demo_loop --demo-dir var/demo '{"n": 2000, "k": 2}'
    python -m benchmarks.bench_demo_loop --demo-dir var/demo '{"n": 400, "k": 2, "teacher_lr": 1e-4,
        "cfg": {"learning_rate": 1e-3, "batch_size": 16, "grad_accum": 1, "num_epochs": 10}}'

Keys: n (training prompts), k (samples), temp, eval (held-out prompts, default 200), cfg (DCKD config
overrides), teacher_lr (π_dpo's lr instead of the run's), teacher_dpo (false: KL to π_sft), eval_dpo."""
import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ml.config import config_from_dict
from ml.data import PreferencePair
from ml.demo.tasks import oracle_score
from ml.experiments import load_demo_world, oracle_eval, sample_answers
from ml.judges import JudgeItem, LikelihoodJudge, judge_pairs
from ml.modeling import load_model
from ml.pipeline import teacher_dpo_config
from ml.recipes import recipe_for
from webapp.training.presets import sized_config


def pairs_judged(world, tasks, *, k: int, temperature: float) -> tuple[list, dict]:
    sample = dict(k=k, temperature=temperature, max_new_tokens=32, batch_size=64)
    teacher_answers = sample_answers(world.teacher, tasks, seed=0, **sample)
    student_answers = sample_answers(world.student, tasks, seed=1, **sample)
    items, meta = [], []
    for task, teacher_samples, student_samples in zip(tasks, teacher_answers, student_answers):
        for a, b in zip(teacher_samples, student_samples):
            if a.strip() != b.strip():
                items.append(JudgeItem(task.prompt, a, b))
                meta.append((task, a, b))
    teacher = load_model(str(world.teacher))
    verdicts = judge_pairs(LikelihoodJudge(teacher.model, teacher.tokenizer), items, batch_size=32)
    pairs, right, from_teacher = [], 0, 0
    for verdict, (task, a, b) in zip(verdicts, meta):
        chosen, rejected = (a, b) if verdict.p_a_over_b > 0.5 else (b, a)
        pairs.append(PreferencePair(task.prompt, chosen, rejected))
        right += oracle_score(task, chosen) and not oracle_score(task, rejected)
        from_teacher += chosen == a
    n = max(len(pairs), 1)
    return pairs, {"pairs": len(pairs), "label_correct": right / n, "chosen_from_teacher": from_teacher / n}


def run(demo_dir, args: dict, work: Path) -> dict:
    world, started = load_demo_world(demo_dir), time.perf_counter()
    pairs, stats = pairs_judged(world, world.train_tasks[: args.get("n", 48)], k=args.get("k", 2),
                                temperature=args.get("temp", 1.0))
    student_params = load_model(str(world.student)).model.num_parameters()
    config = config_from_dict("dckd", {**sized_config("dckd", student_params=student_params, pair_count=len(pairs)),
                                       **args.get("cfg", {})})
    pi_dpo = str(world.teacher)
    if args.get("teacher_dpo", True):
        dpo_config = teacher_dpo_config(config)
        if "teacher_lr" in args:
            dpo_config = replace(dpo_config, learning_rate=args["teacher_lr"])
        pi_dpo = recipe_for("dpo")(dpo_config, pairs, work / "teacher_dpo", student=str(world.teacher)).final_dir
    result = recipe_for("dckd")(config, pairs, work / "dckd", student=str(world.student), teacher=str(pi_dpo),
                                cache_dir=work / "signals")
    held_out = world.eval_tasks[: args.get("eval", 200)]
    score = dict(max_new_tokens=32, batch_size=64)
    row = {"args": args, **stats, "steps": result.steps,
           "config": {k: getattr(config, k) for k in ("learning_rate", "batch_size", "grad_accum", "num_epochs", "alpha_w")},
           "base": oracle_eval(world.student, held_out, **score), "trained": oracle_eval(result.final_dir, held_out, **score)}
    if args.get("eval_dpo"):
        row["pi_dpo"] = oracle_eval(pi_dpo, held_out, **score)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default="var/demo")
    parser.add_argument("settings", nargs="?", default="{}", help="JSON object, keys in the module docstring")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-loop-") as work:
        row = run(options.demo_dir, json.loads(options.settings), Path(work))
    print(json.dumps(row, indent=1))
    print(f"pairs {row['pairs']} · base {row['base']['overall']:.3f} → trained {row['trained']['overall']:.3f} "
          f"({row['seconds']} s)")


if __name__ == "__main__":
    main()
