"""One training recipe per method (ml/recipes/<method>.py), each exposing
`train(config, data, output_dir, hooks, *, student, teacher=None, ..., resume_from=None) -> TrainResult`.
`recipe_for(method)` imports the one asked for, so choosing a method loads only its dependencies."""
import importlib

RECIPE_MODULES = {"sft": "sft", "kd": "kd", "dpo": "dpo", "dckd": "dckd", "adpa": "adpa",
                  "adpa_plus": "adpa_plus", "taid": "taid", "redi": "redi", "uld": "uld"}


def recipe_for(method: str):
    """The `train` function of `method` (a key of ml.config.METHODS)."""
    if method not in RECIPE_MODULES:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(RECIPE_MODULES)})")
    return importlib.import_module(f"ml.recipes.{RECIPE_MODULES[method]}").train
