"""Runs lm-evaluation-harness tasks (ml.standard_benchmarks names them and reads the scores) on a
loaded model (HFLM) or an endpoint (lm-eval's OpenAI-compatible client), with the tasks shipped in
ml/benchmark_tasks/ on lm-eval's include path; and writes the shipped demo task's documents."""
import json
import tempfile
from pathlib import Path

from ml.standard_benchmarks import TASKS_DIR, BenchmarkError, require, scores_of


def write_demo_task(path: Path, *, n: int = 60, seed: int = 2024) -> Path:
    """The JSONL of `distillery_demo`: held-out (eval-split) demo instructions with their checked answers."""
    from ml.demo.build import DEMO_FAMILIES
    from ml.demo.tasks import generate_split_tasks

    tasks = generate_split_tasks(n, seed=seed, split="eval", families=DEMO_FAMILIES)
    path.write_text("".join(json.dumps({"prompt": t.prompt, "answer": t.answer, "family": t.family}) + "\n"
                            for t in tasks))
    return path


def _include_dir(root: Path) -> Path:
    """The shipped task YAMLs, with `data_files` made absolute, in `root`."""
    import yaml

    for source in TASKS_DIR.glob("*.yaml"):
        task = yaml.safe_load(source.read_text())
        files = task.get("dataset_kwargs", {}).get("data_files", {})
        for split, name in files.items():
            files[split] = str((TASKS_DIR / name).resolve())
        (root / source.name).write_text(yaml.safe_dump(task, sort_keys=False))
    return root


def run_benchmarks(tasks: list[str], *, loaded=None, endpoint: dict | None = None, limit: int | None = None,
                   batch_size: int = 8, max_gen_toks: int = 64, api_key: str = "", chat_api: bool = False,
                   seed: int = 0) -> dict:
    """Runs lm-eval `tasks` on a LoadedModel (`loaded`) or an endpoint ({"base_url", "model"}, as
    ml.endpoints.spec.EndpointSpec), `limit` documents per task (None = all). Chat models get their
    chat template (the prompt format they were trained on)."""
    require()
    import lm_eval
    from lm_eval.tasks import TaskManager

    if (loaded is None) == (endpoint is None):
        raise ValueError("run_benchmarks needs a loaded model or an endpoint, not both")
    with tempfile.TemporaryDirectory(prefix="distillery-lm-eval-") as include:
        shipped = {path.stem for path in TASKS_DIR.glob("*.yaml")}
        # lm-eval's own ~15k task configs take ~30 s to index: only when a task is not one shipped here.
        manager = TaskManager(include_path=str(_include_dir(Path(include))), include_defaults=not set(tasks) <= shipped)
        unknown = [t for t in tasks if t not in manager.all_tasks]
        if unknown:
            raise BenchmarkError(f"lm-eval knows no task {', '.join(unknown)} (hub tasks are lm-eval's names, "
                                 f"e.g. arc_easy; shipped here: {', '.join(sorted(shipped))})")
        if loaded is not None:
            model, chat = _hf_model(loaded, batch_size), bool(getattr(loaded.tokenizer, "chat_template", None))
        else:
            model, chat = _api_model(endpoint, api_key, chat_api, batch_size), chat_api
        results = lm_eval.simple_evaluate(
            model=model, tasks=list(tasks), task_manager=manager, limit=limit, apply_chat_template=chat,
            log_samples=False, bootstrap_iters=1000, random_seed=seed, numpy_random_seed=seed,
            torch_random_seed=seed, fewshot_random_seed=seed, gen_kwargs=f"max_gen_toks={max_gen_toks}")
    return scores_of(results or {}, list(tasks))


def _hf_model(loaded, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size,
                device=str(next(loaded.model.parameters()).device))


def _api_model(endpoint: dict, api_key: str, chat_api: bool, batch_size: int):
    """lm-eval's OpenAI-compatible client at the endpoint: requests as text (tokenizer_backend None:
    nothing is downloaded for a tokenizer), so generate-until tasks run on any server; log-likelihood
    tasks need a completions server that echoes prompt log-probs (vLLM does) and a tokenizer."""
    from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

    base = endpoint["base_url"].rstrip("/")
    common = {"model": endpoint["model"], "tokenizer_backend": None, "tokenized_requests": False,
              "num_concurrent": int(endpoint.get("concurrency", 1) or 1), "max_retries": 3,
              "timeout": int(float(endpoint.get("timeout_s", 60) or 60))}
    if api_key:
        common["header"] = {"Authorization": f"Bearer {api_key}"}
    if chat_api:
        return LocalChatCompletion(base_url=f"{base}/chat/completions", batch_size=1, **common)
    return LocalCompletionsAPI(base_url=f"{base}/completions", batch_size=batch_size, **common)
