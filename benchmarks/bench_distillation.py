"""The distillation table on the built demo world (ml/experiments.py does the work): student oracle
accuracy after SFT only, DPO, DCKD, ADPA and ADPA+ (plus SFT continued on the chosen answers with the
same budget, to separate the distillation terms from the extra NLL training), the teacher's, and the
teacher-as-judge agreement with the oracle. Same seed and step budget for every method; preference
pairs labelled by a simulated annotator at `--noise` error rate.

    python benchmarks/bench_distillation.py --demo-dir var/demo [--json var/bench/distillation.json]

Prints the markdown table on stdout (progress on stderr) and writes the whole result as JSON."""
import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.experiments import ExperimentConfig, format_table, load_demo_world, run_experiment, with_overrides  # noqa: E402


def quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", default="var/demo", help="built demo world (python -m ml demo build)")
    parser.add_argument("--json", default="var/bench/distillation.json", help="where the result goes")
    parser.add_argument("--work-dir", help="keep checkpoints and signal caches here (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=2)
    for f in dataclasses.fields(ExperimentConfig):
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None,
                                help=f"default {f.default}")
    parser.add_argument("--methods", nargs="+", help=f"default {' '.join(ExperimentConfig().methods)}")
    parser.add_argument("--no-judges", action="store_true", help="skip the teacher-as-judge agreement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(ExperimentConfig)
                 if f.name not in ("methods", "judges")}
    exp = with_overrides(ExperimentConfig(), **overrides, methods=tuple(args.methods) if args.methods else None,
                         judges=False if args.no_judges else None)
    world = load_demo_world(args.demo_dir)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-distill-"))
        # TRL prints every step's log dict and draws its own progress bars; our progress lines still show.
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        result = run_experiment(world, exp, work_dir, log=lambda line: print(line, file=sys.__stderr__, flush=True))
    report = {**result.to_dict(), "demo_dir": str(args.demo_dir), "threads": args.threads,
              "total_seconds": time.perf_counter() - started, "torch": torch.__version__}
    print(format_table(result))
    print(f"\n{result.config['train_prompts']} train prompts -> {result.pairs['pairs']} pairs "
          f"(labels right {100 * result.pairs['label_correct']:.1f}%), {result.config['eval_prompts']} held-out "
          f"prompts; {report['total_seconds']:.0f} s on {args.threads} thread(s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
