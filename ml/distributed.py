"""One training run on several processes: the entrypoint each rank runs under `torchrun` or
`accelerate launch` (`python -m ml.distributed SPEC.json`). The spec names the method, its config,
the data (a JSONL file), the output dir, the model arguments and two files: one whose existence
asks every rank to stop (cooperative cancel) and one rank 0 writes the TrainResult into. Rank 0
alone reports: each optimizer step becomes one `EVENT_PREFIX {json}` line on stdout, which the
supervisor (workers/launch.py) relays to the run's hooks. The recipes themselves are unchanged: the
library Trainer under them reads the launcher's environment and shards the data across ranks."""
import dataclasses
import json
import os
import sys
from pathlib import Path

EVENT_PREFIX = "@@distillery-event "
SPEC_VERSION = 1


def write_spec(path: Path, *, method: str, config: dict, data_file, output_dir, models: dict, cancel_file,
               result_file, resume_from=None, report_to=(), run_name: str = "") -> Path:
    """The JSON a launched run reads (everything plain: paths as strings, the config as a dict)."""
    spec = {"version": SPEC_VERSION, "method": method, "config": config, "data": str(data_file),
            "output_dir": str(output_dir), "models": {k: str(v) if v is not None else None for k, v in models.items()},
            "cancel_file": str(cancel_file), "result_file": str(result_file),
            "resume_from": str(resume_from) if resume_from else None,
            "report_to": list(report_to), "run_name": run_name}  # experiment trackers (ml.trackers), rank 0 logs
    path.write_text(json.dumps(spec, indent=2))
    return path


def result_to_dict(result) -> dict:
    return {"final_dir": str(result.final_dir) if result.final_dir else None, "steps": result.steps,
            "metrics": result.metrics, "checkpoints": [str(p) for p in result.checkpoints],
            "stopped": result.stopped, "history": result.history}


def result_from_dict(data: dict):
    from ml.recipes.hooks import TrainResult

    return TrainResult(Path(data["final_dir"]) if data["final_dir"] else None, data["steps"], data["metrics"],
                       [Path(p) for p in data["checkpoints"]], data["stopped"], data["history"])


def _load_data(method: str, path):
    from ml.data import load_preference_pairs, load_sft_examples, read_jsonl

    rows = read_jsonl(path)
    if rows and "chosen" in rows[0]:
        return load_preference_pairs(path)
    if method not in ("sft", "kd", "taid"):
        raise ValueError(f"{method} trains on preference pairs; {path} holds SFT examples")
    return load_sft_examples(path)


def world_size() -> int:
    """Processes of this run (torchrun / accelerate launch set WORLD_SIZE; 1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def rank_device() -> str:
    """This rank's device: its own GPU (LOCAL_RANK) when CUDA is there, else the CPU."""
    import torch

    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def main(argv=None) -> int:
    import torch

    from ml.config import config_from_dict
    from ml.recipes import recipe_for
    from ml.recipes.hooks import Hooks

    spec_path = Path((argv or sys.argv[1:])[0])
    spec = json.loads(spec_path.read_text())
    rank = int(os.environ.get("RANK", "0"))
    (spec_path.parent / f"rank-{rank}.pid").write_text(str(os.getpid()))  # lets a supervisor or a test find ranks
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = config_from_dict(spec["method"], spec["config"])
    data = _load_data(spec["method"], spec["data"])
    cancel_file = Path(spec["cancel_file"])

    def on_progress(event):
        if rank == 0:
            print(EVENT_PREFIX + json.dumps(dataclasses.asdict(event)), flush=True)

    hooks = Hooks(on_progress=on_progress, should_stop=cancel_file.exists, report_to=tuple(spec.get("report_to", ())),
                  run_name=spec.get("run_name", ""))
    models = {k: v for k, v in spec["models"].items() if v is not None}
    result = recipe_for(spec["method"])(config, data, spec["output_dir"], hooks, resume_from=spec["resume_from"],
                                        device=rank_device(), **models)
    if rank == 0:
        partial = Path(spec["result_file"] + ".partial")
        partial.write_text(json.dumps(result_to_dict(result)))
        os.replace(partial, spec["result_file"])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
