"""`python -m ml precompute dckd|adpa`: fill the teacher-signal cache ahead of training (ml/teacher_signals.py),
e.g. on a GPU host, and print what was written (or found: a second run is a cache hit)."""
import dataclasses
import json
from pathlib import Path

from ml.data import load_preference_pairs
from ml.teacher_signals import precompute_adpa, precompute_dckd


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("precompute", help="precompute cached teacher signals (DCKD / ADPA)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in ("dckd", "adpa"):
        sub = kinds.add_parser(kind, help=f"{kind.upper()} teacher signals")
        sub.add_argument("--data", type=Path, required=True, help="JSONL preference pairs")
        sub.add_argument("--teacher-dpo", required=True, help="pi_dpo model dir or hub id")
        if kind == "adpa":
            sub.add_argument("--teacher-sft", required=True, help="pi_sft model dir or hub id")
            sub.add_argument("--student", required=True, help="student whose greedy responses give the states")
            sub.add_argument("--max-new-tokens", type=int, default=256)
            sub.add_argument("--sft-floor", type=float, default=1e-7, help="floor on every probability in A")
            sub.add_argument("--backend", default=None, help="what writes the student's responses: hf, vllm or auto "
                             "(default: $DISTILLERY_GENERATION_BACKEND or hf)")
        else:
            sub.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the teacher")
        sub.add_argument("--cache-dir", type=Path, default=Path("var/cache/signals"))
        sub.add_argument("--top-k", type=int, default=50)
        sub.add_argument("--max-length", type=int, default=1024)
        sub.add_argument("--batch-size", type=int, default=8)
        sub.set_defaults(func=run)


def run(args) -> int:
    pairs = load_preference_pairs(args.data)
    common = dict(cache_dir=args.cache_dir, top_k=args.top_k, max_length=args.max_length, batch_size=args.batch_size)
    if args.kind == "dckd":
        signal = precompute_dckd(args.teacher_dpo, pairs, temperature=args.temperature, **common)
    else:
        signal = precompute_adpa(args.teacher_dpo, args.teacher_sft, args.student, pairs,
                                 max_new_tokens=args.max_new_tokens, sft_floor=args.sft_floor,
                                 generation_backend=args.backend, **common)
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(signal).items()},
                     indent=2))
    return 0
