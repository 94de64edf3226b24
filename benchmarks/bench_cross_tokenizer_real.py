"""A real checkpoint across tokenizer families (issue 20): SmolLM2-135M-Instruct (49,152-entry byte-level
BPE, `python -m ml demo real`) distilled by ULD into the demo student (its own 252-entry word-level
tokenizer), a few steps on the CPU, on the teacher's own greedy answers to the real demo's chat
prompts. Prints seconds per step, the loss terms and the share of characters aligned one token to
one token.

    python benchmarks/bench_cross_tokenizer_real.py --real-dir var/demo-real --student var/demo/student
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.config import ULDConfig  # noqa: E402
from ml.data import SFTExample, read_jsonl  # noqa: E402
from ml.recipes import recipe_for  # noqa: E402
from ml.recipes.sft import teacher_targets  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--real-dir", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-cross-tokenizer-real"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--top-k", type=int, nargs="+", default=[0, 20],
                        help="teacher probabilities kept per group: 0 = full vocabulary, 20 = a hosted API's top-20")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = list(read_jsonl(args.real_dir / "prompts" / "train.jsonl"))[: args.prompts]
    prompts = [row.get("messages") or row.get("prompt") or row["text"] for row in rows]
    started = time.perf_counter()
    examples = teacher_targets(args.real_dir / "teacher", prompts, max_new_tokens=48, seed=0, batch_size=8)
    generate_s = time.perf_counter() - started
    out = {"teacher": "SmolLM2-135M-Instruct", "student": str(args.student), "prompts": len(prompts),
           "generate_s": round(generate_s, 1), "example_answer": examples[0].response[:120], "runs": {}}
    for top_k in args.top_k:
        config = ULDConfig(learning_rate=1e-3, lr_scheduler="constant", warmup_ratio=0.0, batch_size=2, grad_accum=1,
                           max_length=160, max_steps=args.steps, num_epochs=100, top_k=top_k)
        started = time.perf_counter()
        result = recipe_for("uld")(config, [SFTExample(e.prompt, e.response) for e in examples],
                                   args.work / f"top{top_k}", student=args.student, teacher=args.real_dir / "teacher")
        out["runs"][top_k or "full vocabulary"] = {"train_s": round(time.perf_counter() - started, 1),
                                                   "steps": result.steps, "first": result.history[0],
                                                   "last": result.history[-1]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
