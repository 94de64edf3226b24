"""Standard benchmarks through lm-evaluation-harness (lm-eval): task names, lm-eval's results as
scores with standard errors, and the package check. STANDARD LIBRARY ONLY (the web app validates an
evaluation's tasks with it); ml.lm_eval_runner runs them, on any model version: in-process with
HFLM over a model already loaded (ml.modeling.load_model, the path every 7B takes), or for an endpoint
version through lm-eval's OpenAI-compatible client (`local-completions`, or `local-chat-completions`
for a chat-only server) at its base_url. `run_benchmarks` returns {task: {metric: {"value", "stderr"}}}
(the standard error lm-eval reports beside each metric; None where it has none).

Task names are lm-eval's: hub tasks (arc_easy, hellaswag, gsm8k ...) need their datasets from the
Hugging Face hub, so a network (or a warm HF cache) on the worker; the tasks shipped in
ml/benchmark_tasks/ run offline: `distillery_demo`, a generate-until task over held-out demo-world
instructions (ml.demo.tasks, the eval split) scored by exact match. A shipped task's YAML names its
JSONL relative to itself; lm-eval would read it relative to the working directory, so the YAMLs are
copied to a temporary include dir with absolute paths. lm-eval is imported only by the runner, when a
benchmark runs, and a worker without it fails with the package to install."""
import importlib.util
import math
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "benchmark_tasks"
PIP_PACKAGE = "lm-eval"
DEMO_TASK = "distillery_demo"


class BenchmarkError(ValueError):
    """A benchmark that cannot run: lm-eval missing, or a task name lm-eval does not know."""


def require() -> None:
    if importlib.util.find_spec("lm_eval") is None:
        raise BenchmarkError(f"standard benchmarks need lm-eval on the gpu worker (pip install {PIP_PACKAGE})")


def parse_tasks(value) -> list[str]:
    """"arc_easy, distillery_demo" (or a list) -> ["arc_easy", "distillery_demo"]; names are checked
    by lm-eval when the benchmark runs (the web process does not import it)."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    bad = [n for n in names if not n.replace("_", "").replace("-", "").replace(".", "").isalnum() or len(n) > 100]
    if bad:
        raise BenchmarkError(f"not a task name: {', '.join(bad)}")
    return names


def scores_of(results: dict, tasks: list[str]) -> dict:
    """lm-eval's results dict -> {task: {metric: {"value": float, "stderr": float | None}}}."""
    scores = {}
    for task, row in (results.get("results") or {}).items():
        metrics = {}
        for key, value in row.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filter_name = key.split(",", 1)
            stderr = row.get(f"{metric}_stderr,{filter_name}")
            stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
            metrics[metric if filter_name == "none" else f"{metric} ({filter_name})"] = {"value": float(value),
                                                                                        "stderr": stderr}
        if metrics:
            scores[task] = metrics
    return {task: scores[task] for task in sorted(scores, key=lambda t: (t not in tasks, t))}


