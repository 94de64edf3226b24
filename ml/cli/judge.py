"""`python -m ml judge`: score a JSONL file of response pairs with a teacher judge (implicit reward,
likelihood or generative) and write each row back with its verdict. Also `build_judge`, the one place
command-line judge options become a judge object (`ml evaluate` reuses it), and a tqdm progress
callback shared by the evaluation command."""
import argparse
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from ml.data import read_jsonl, write_jsonl
from ml.judges import (DEFAULT_JUDGE_TEMPLATE, GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge,
                       judge_pairs)
from ml.modeling import check_same_tokenizer, load_model

JUDGES = ("implicit", "likelihood", "generative")
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """Options that pick and configure a judge (shared with `ml evaluate`)."""
    parser.add_argument("--teacher-dpo", help="teacher after DPO (implicit judge)")
    parser.add_argument("--teacher-sft", help="teacher after SFT, the DPO reference (implicit judge)")
    parser.add_argument("--beta", type=float, default=0.01,
                        help="implicit-reward beta; use the teacher DPO stage's (default 0.01)")
    parser.add_argument("--template", type=Path,
                        help="file holding the generative judge's str.format template with {prompt}, "
                             "{first}, {second}, {first_label}, {second_label}")
    parser.add_argument("--answer-tokens", nargs=2, default=["A", "B"], metavar=("FIRST", "SECOND"),
                        help="what the generative judge's answer starts with (default A B); each must be one "
                             "token where the model begins its turn")
    parser.add_argument("--warn-below", type=float, default=0.5,
                        help="generative judge: flag and log batches whose answer mass is below this")
    parser.add_argument("--refuse-below", type=float, default=None,
                        help="generative judge: stop with an error when the answer mass is below this")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="auto",
                        help="auto = bf16 on CUDA, fp32 on CPU")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "judge", help="teacher verdicts on response pairs",
        description="Read rows {prompt, response_a, response_b} and write them back with p_a_over_b, "
                    "judge, order and details. implicit needs --teacher-dpo and --teacher-sft; "
                    "likelihood and generative use --teacher (default: --teacher-dpo).")
    parser.add_argument("--judge", choices=JUDGES, required=True)
    parser.add_argument("--teacher", help="teacher model for the likelihood and generative judges")
    add_judge_options(parser)
    parser.add_argument("--pairs", type=Path, required=True, help="JSONL rows {prompt, response_a, response_b}")
    parser.add_argument("--out", type=Path, required=True, help="JSONL output, one verdict per input row")
    parser.set_defaults(func=run)


def progress_bar(desc: str, total: int):
    """(bar, on_progress) where on_progress(done, total) moves a tqdm bar to `done`."""
    bar = tqdm(desc=desc, total=total, unit="item", leave=False)

    def on_progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return bar, on_progress


def build_judge(kind: str, args, *, teacher=None):
    """A judge from parsed options. `teacher` (a LoadedModel) is reused for the likelihood and
    generative judges when given; otherwise --teacher / --teacher-dpo is loaded."""
    device, dtype = args.device, DTYPES[args.dtype]
    if kind == "implicit":
        if not (args.teacher_dpo and args.teacher_sft):
            raise SystemExit("the implicit judge needs --teacher-dpo and --teacher-sft")
        dpo = load_model(args.teacher_dpo, device=device, dtype=dtype)
        sft = load_model(args.teacher_sft, device=device, dtype=dtype)
        check_same_tokenizer(dpo.tokenizer, sft.tokenizer, method="the implicit-reward judge")
        return ImplicitRewardJudge(dpo.model, sft.model, dpo.tokenizer, beta=args.beta)
    if teacher is None:
        source = getattr(args, "teacher", None) or args.teacher_dpo
        if not source:
            raise SystemExit(f"the {kind} judge needs --teacher (or --teacher-dpo)")
        teacher = load_model(source, device=device, dtype=dtype)
    if kind == "likelihood":
        return LikelihoodJudge(teacher.model, teacher.tokenizer)
    template = args.template.read_text(encoding="utf-8") if args.template else DEFAULT_JUDGE_TEMPLATE
    return GenerativeJudge(teacher.model, teacher.tokenizer, template, answer_tokens=tuple(args.answer_tokens),
                           warn_below=getattr(args, "warn_below", 0.5), refuse_below=getattr(args, "refuse_below", None))


def _items(rows: list[dict], path) -> list[JudgeItem]:
    items = []
    for number, row in enumerate(rows, 1):
        missing = [k for k in ("prompt", "response_a", "response_b") if k not in row]
        if missing:
            raise SystemExit(f"{path}:{number}: missing {', '.join(missing)}")
        items.append(JudgeItem(row["prompt"], row["response_a"], row["response_b"]))
    return items


def run(args) -> int:
    rows = read_jsonl(args.pairs)
    items = _items(rows, args.pairs)
    judge = build_judge(args.judge, args)
    bar, on_progress = progress_bar(f"judging ({args.judge})", len(items))
    with bar:
        verdicts = judge_pairs(judge, items, batch_size=args.batch_size, on_progress=on_progress)
    write_jsonl(args.out, [{**row, **asdict(v)} for row, v in zip(rows, verdicts)])
    mean_p = sum(v.p_a_over_b for v in verdicts) / max(len(verdicts), 1)
    print(f"{len(verdicts)} verdicts by {judge.identity} -> {args.out} (mean P(a > b) = {mean_p:.3f})")
    return 0
