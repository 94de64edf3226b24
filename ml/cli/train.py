"""`python -m ml train`: run one training recipe from the shell with a tqdm progress bar, e.g.
`python -m ml train --method dckd --config cfg.yaml --data pairs.jsonl --student DIR --teacher-dpo DIR
--out DIR`. The YAML holds the method's config fields (ml/config.py); `--set name=value` overrides one."""
import json
from pathlib import Path

import yaml
from tqdm import tqdm

from ml.config import METHODS, ConfigError, config_from_dict
from ml.data import load_preference_pairs, load_sft_examples
from ml.distributed import is_main_process, rank_device, world_size
from ml.recipes import recipe_for
from ml.recipes.hooks import Hooks

SFT_DATA_METHODS = ("sft", "kd", "taid")  # rows {prompt, response} (or pairs, read as their chosen side)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a student with one method")
    parser.add_argument("--method", required=True, choices=sorted(METHODS) + ["uld"])
    parser.add_argument("--config", type=Path, help="YAML file of config fields (defaults otherwise)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override one config field (dotted for ADPA+: adpa.weight=2)")
    parser.add_argument("--data", type=Path, required=True, help="JSONL of pairs or {prompt, response} rows")
    parser.add_argument("--student", required=True, help="student model dir or hub id")
    parser.add_argument("--teacher", help="teacher (KD, TAID, sequence-level KD, teacher-reference DPO)")
    parser.add_argument("--teacher-dpo", help="pi_dpo, the DPO-trained teacher (DCKD, ADPA, ADPA+)")
    parser.add_argument("--teacher-sft", help="pi_sft, the SFT teacher (ADPA, ADPA+)")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/signals"), help="teacher signal cache")
    parser.add_argument("--resume-from", type=Path, help="checkpoint dir to continue from")
    parser.add_argument("--out", type=Path, required=True, help="output dir (checkpoints, final/)")
    parser.set_defaults(func=run)


def _set(data: dict, assignment: str) -> None:
    name, sep, value = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set expects NAME=VALUE, got {assignment!r}")
    *parents, leaf = name.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
    data[leaf] = value


def load_config(method: str, path: Path | None, overrides: list):
    data = yaml.safe_load(path.read_text()) if path else {}
    for assignment in overrides:
        _set(data, assignment)
    return config_from_dict(method, data or {}, coerce_strings=True)


def recipe_kwargs(args) -> dict:
    """Model arguments each recipe takes, by method."""
    if args.method in ("dckd", "adpa", "adpa_plus"):
        kwargs = {"teacher": args.teacher_dpo or args.teacher, "cache_dir": args.cache_dir}
        if args.method != "dckd":
            kwargs["teacher_sft"] = args.teacher_sft
        return kwargs
    return {"teacher": args.teacher} if args.teacher else {}


def run(args) -> int:
    try:
        config = load_config(args.method, args.config, args.set)
    except ConfigError as error:
        raise SystemExit(f"bad config: {error}")
    load = load_sft_examples if args.method in SFT_DATA_METHODS else load_preference_pairs
    data = load(args.data)
    bar = tqdm(desc=f"{args.method}", unit="step")

    def on_progress(event):
        bar.total = event.total_steps
        bar.n = event.step
        bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", tok_s=f"{event.tokens_per_s:.0f}")
        bar.refresh()

    train = recipe_for(args.method)
    # Under `torchrun` / `accelerate launch` every rank runs this command: each on its own device,
    # rank 0 alone reporting (python -m ml.distributed is the supervised form of the same).
    launched = world_size() > 1
    result = train(config, data, args.out, Hooks(on_progress=on_progress if is_main_process() else lambda e: None),
                   student=args.student, resume_from=args.resume_from,
                   device=rank_device() if launched else None, **recipe_kwargs(args))
    bar.close()
    if not is_main_process():
        return 0
    print(json.dumps({"final_dir": str(result.final_dir), "steps": result.steps, "stopped": result.stopped,
                      "checkpoints": [str(c) for c in result.checkpoints], "metrics": result.metrics}, indent=2))
    return 0
