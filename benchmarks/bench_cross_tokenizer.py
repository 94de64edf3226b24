"""Cross-tokenizer distillation on the demo world (issue 20): the demo teacher (word-level tokenizer)
into the second demo student (byte-level BPE, ml/demo/bpe_student.py) by ULD on the teacher's sampled
answers, against sequence-level KD on the same answers and SFT on chosen (simulated annotator, 10%
noise), with same-tokenizer token-level KD into the demo student as the ceiling. Every row: same
seed, lr, batch and optimizer steps. ULD's weight lambda is tuned on a validation split of training-
half prompts (never trained on), seed 0 only; the score is greedy oracle accuracy on the held-out
prompts, mean and 95% CI over seeds.

    python benchmarks/bench_cross_tokenizer.py --demo-dir var/demo --seeds 0 1 2
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.config import KDConfig, SFTConfig, ULDConfig  # noqa: E402
from ml.demo.annotator import SimulatedAnnotator  # noqa: E402
from ml.experiments import (annotate_pairs, load_demo_world, mean_ci, oracle_eval, sample_answers,  # noqa: E402
                            teacher_examples)
from ml.recipes import recipe_for  # noqa: E402


def shared(args, seed):
    return dict(learning_rate=args.lr, lr_scheduler="cosine", warmup_ratio=0.1, num_epochs=1000, max_steps=args.steps,
                batch_size=args.batch_size, grad_accum=1, max_length=96, seed=seed)


def run_row(row, args, seed, data, world, bpe, workdir, weight=1.0):
    if row == "uld":
        return recipe_for("uld")(ULDConfig(**shared(args, seed), weight=weight), data, workdir, student=bpe,
                                 teacher=world.teacher)
    if row in ("seq_kd", "sft_chosen"):
        return recipe_for("sft")(SFTConfig(**shared(args, seed)), data, workdir, student=bpe)
    if row == "kd_same":
        return recipe_for("kd")(KDConfig(**shared(args, seed)), data, workdir, student=world.student,
                                teacher=world.teacher)
    raise ValueError(row)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-cross-tokenizer"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--num-eval", type=int, default=0)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = load_demo_world(args.demo_dir)
    bpe = args.demo_dir / "student-bpe"
    train = world.train_tasks[: args.num_train]
    val = world.train_tasks[args.num_train: args.num_train + args.num_val]  # training half, never trained on
    held_out = world.eval_tasks[: args.num_eval] if args.num_eval else world.eval_tasks
    gen = dict(max_new_tokens=12, batch_size=64)
    results, tuning, seconds = [], {}, {}
    for seed in args.seeds:
        teacher_answers = sample_answers(world.teacher, train, k=args.samples, temperature=1.0, seed=seed, **gen)
        student_answers = sample_answers(world.student, train, k=args.samples, temperature=1.0, seed=seed + 1, **gen)
        pairs, _ = annotate_pairs(train, teacher_answers, student_answers, SimulatedAnnotator(0.1, seed=seed))
        teacher_data = teacher_examples(train, teacher_answers)
        if seed == args.seeds[0]:  # lambda on the validation split, once
            for weight in args.weights:
                result = run_row("uld", args, seed, teacher_data, world, bpe, args.work / f"tune-{weight}", weight)
                tuning[weight] = oracle_eval(result.final_dir, val, **gen)["overall"]
                print(f"tune lambda={weight}: validation {tuning[weight]:.3f}", flush=True)
            best = max(tuning, key=tuning.get)
        row_data = {"uld": teacher_data, "seq_kd": teacher_data, "sft_chosen": pairs, "kd_same": teacher_data}
        accuracy = {"start_bpe": oracle_eval(bpe, held_out, **gen)["overall"],
                    "start_demo": oracle_eval(world.student, held_out, **gen)["overall"]}
        for row, data in row_data.items():
            started = time.perf_counter()
            result = run_row(row, args, seed, data, world, bpe, args.work / f"{seed}-{row}", best)
            seconds.setdefault(row, []).append(time.perf_counter() - started)
            accuracy[row] = oracle_eval(result.final_dir, held_out, **gen)["overall"]
            print(f"seed {seed} {row}: {result.steps} steps, held-out {accuracy[row]:.3f} "
                  f"({seconds[row][-1]:.0f}s) {json.dumps(result.metrics)}", flush=True)
        results.append({"seed": seed, "accuracy": accuracy, "pairs": len(pairs), "teacher_answers": len(teacher_data)})
    summary = {row: mean_ci([r["accuracy"][row] for r in results]) for row in results[0]["accuracy"]}
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "tuning": tuning, "lambda": best, "results": results,
           "summary": summary, "seconds_per_run": {k: sum(v) / len(v) for k, v in seconds.items()},
           "held_out": len(held_out), "validation": len(val)}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
