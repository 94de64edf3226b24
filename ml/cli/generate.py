"""`python -m ml generate`: answer the prompts of a jsonl file with a model (k samples each) and
write one jsonl row per prompt with its generations, token ids and token log-probs (and the top-K
alternatives per token with --top-logprobs K). --backend hf|vllm|auto as DISTILLERY_GENERATION_BACKEND."""
import argparse
import json
from pathlib import Path

from tqdm.auto import tqdm

from ml.backends import generator_for


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate responses for a jsonl of prompts")
    parser.add_argument("--model", required=True, help="model directory or hub id")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--prompts", required=True, type=Path, help='jsonl rows with "prompt" (text or chat messages)')
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-logprobs", type=int, default=0, help="also keep the K likeliest tokens per step")
    parser.add_argument("--backend", default=None, help="hf, vllm or auto (default: $DISTILLERY_GENERATION_BACKEND or hf)")
    parser.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    generator = generator_for(args.model, revision=args.revision, backend=args.backend)
    with tqdm(total=len(rows), desc="generating") as bar:
        outputs = generator.generate(
            [row["prompt"] for row in rows],
            k=args.k,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            batch_size=args.batch_size,
            top_logprobs=args.top_logprobs,
            on_progress=lambda done, total: bar.update(done - bar.n),
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as handle:
        for row, samples in zip(rows, outputs):
            generations = [vars(sample) for sample in samples]
            handle.write(json.dumps({**row, "model": args.model, "generations": generations}) + "\n")
    print(f"{len(rows)} prompts x {args.k} -> {args.out}")
    return 0
