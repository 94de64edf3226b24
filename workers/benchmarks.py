"""Standard benchmarks inside an evaluation job: the lm-eval tasks the evaluation asked for
(config["benchmarks"], ml.standard_benchmarks) on every model version it compares, the teacher
included: a version with weights loaded here and scored in-process (HFLM), an endpoint version
through lm-eval's OpenAI-compatible client at its base_url (its key from the worker's environment,
as every endpoint call). One version's failure (a hub task with no network, lm-eval missing) is
stored as its error beside the others' scores; the win rates are already stored by then."""
import os

from ml.modeling import load_model, model_ref
from ml.standard_benchmarks import parse_tasks
from webapp.lifecycle import Stopped
from workers import endpoints


def benchmark_config(config: dict) -> dict:
    return {"tasks": parse_tasks(config.get("benchmarks") or []), "limit": config.get("benchmark_limit") or None,
            "api": config.get("benchmark_api") or "completions",
            "max_gen_toks": int(config.get("max_new_tokens", 64))}


def run_for(model_versions, config: dict, on_progress=None, *, loaded: dict | None = None) -> dict:
    """{"tasks", "limit", "models": {str(id): {"name", "scores", "error"}}}; {} when none were asked.
    `loaded`: LoadedModels the job already holds, by model version id (not loaded twice)."""
    settings = benchmark_config(config)
    if not settings["tasks"]:
        return {}
    models = {}
    for done, version in enumerate(model_versions):
        if on_progress is not None:
            on_progress(done, len(model_versions))
        try:
            scores, error = _score(version, settings, (loaded or {}).get(version.id)), ""
        except Stopped:
            raise
        except Exception as exc:  # noqa: BLE001  (stored beside the others' scores, shown on the page)
            scores, error = {}, f"{type(exc).__name__}: {exc}"
        models[str(version.id)] = {"name": version.name, "scores": scores, "error": error}
    return {"tasks": settings["tasks"], "limit": settings["limit"], "models": models}


def _score(version, settings: dict, held=None) -> dict:
    from ml.lm_eval_runner import run_benchmarks

    common = {"limit": settings["limit"], "max_gen_toks": settings["max_gen_toks"]}
    if endpoints.is_endpoint(version):
        spec = version.endpoint_spec()
        return run_benchmarks(settings["tasks"], endpoint=spec, chat_api=settings["api"] == "chat",
                              api_key=os.environ.get(spec["api_key_env"], "") if spec["api_key_env"] else "", **common)
    if held is not None:
        return run_benchmarks(settings["tasks"], loaded=held, **common)
    loaded = load_model(model_ref(version.source, version.revision or None))
    try:
        return run_benchmarks(settings["tasks"], loaded=loaded, **common)
    finally:
        del loaded
