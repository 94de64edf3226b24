"""The distillation table on the built demo world (ml/experiments.py does the work), over seeds:
held-out oracle accuracy of the SFT student and of every method trained from it with the same
number of optimizer steps (mean and 95% CI over the seeds, and the annotator judgements each row
used): sequence-level KD, token-level KD and TAID on the teacher's own answers (no judgements), SFT
on the chosen answers, DPO (at the students' lr, at a low lr, and with the NLL anchor), DCKD, ADPA,
ADPA+ (two stages, so compared with the 2x-steps rows). Accuracy is also split into the families
where the demo teacher has its systematic flaw and the clean ones (build.json `teacher_errors`).

    python benchmarks/bench_distillation.py --demo-dir var/demo --seeds 0 1 2 [--json var/bench/distillation.json]
    python benchmarks/bench_distillation.py --table-from var/bench/distillation.json   # reprint a table

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

from ml.experiments import (ExperimentConfig, format_judges, format_table, load_demo_world, run_seeds,  # noqa: E402
                            summarize, with_overrides)


def quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def family_groups(demo_dir: Path, world) -> dict:
    """{"flawed": families the teacher was taught wrong, "clean": the others}, from build.json."""
    build = json.loads((demo_dir / "build.json").read_text()) if (demo_dir / "build.json").exists() else {}
    flawed = sorted(build.get("teacher_errors", {}).get("families", {}))
    every = sorted({t.family for t in world.eval_tasks})
    clean = [f for f in every if f not in flawed]
    return {name: fams for name, fams in (("flawed", flawed), ("clean", clean)) if fams}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", default="var/demo", type=Path, help="built demo world (python -m ml demo build)")
    parser.add_argument("--json", default="var/bench/distillation.json", help="where the result goes")
    parser.add_argument("--work-dir", help="keep checkpoints and signal caches here (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for f in dataclasses.fields(ExperimentConfig):
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool) and f.name != "seed":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None,
                                help=f"default {f.default}")
    parser.add_argument("--methods", nargs="+", help=f"default {' '.join(ExperimentConfig().methods)}")
    parser.add_argument("--judges", action="store_true", help="also measure the teacher-as-judge agreement")
    parser.add_argument("--table-from", type=Path, help="print the table of an earlier run's JSON and stop")
    args = parser.parse_args(argv)
    if args.table_from:
        report = json.loads(args.table_from.read_text())
        print(format_table(report["summary"]))
        return report
    torch.set_num_threads(args.threads)
    quiet_libraries()

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(ExperimentConfig)
                 if f.name not in ("methods", "judges", "seed")}
    exp = with_overrides(ExperimentConfig(), **overrides, methods=tuple(args.methods) if args.methods else None,
                         judges=args.judges or None)
    world = load_demo_world(args.demo_dir)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-distill-"))
        # TRL prints every step's log dict and draws its own progress bars; our progress lines still show.
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        results = run_seeds(world, exp, args.seeds, work_dir,
                            log=lambda line: print(line, file=sys.__stderr__, flush=True))
    groups = family_groups(args.demo_dir, world)
    summary = summarize(results, families=groups)
    report = {"summary": summary, "groups": groups, "seeds": [r.to_dict() for r in results],
              "demo_dir": str(args.demo_dir), "threads": args.threads,
              "total_seconds": time.perf_counter() - started, "torch": torch.__version__}
    print(format_table(summary))
    if exp.judges:
        print("\n" + format_judges(results))
    counts = ", ".join(str(r.pairs["pairs"]) for r in results)
    right = ", ".join(f"{100 * r.pairs['label_correct']:.1f}%" for r in results)
    print(f"\nseeds {args.seeds}; {results[0].config['train_prompts']} train prompts x {exp.samples} samples -> "
          f"{counts} pairs (labels right {right}); {results[0].config['eval_prompts']} held-out prompts; "
          f"{report['total_seconds']:.0f} s on {args.threads} thread(s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
