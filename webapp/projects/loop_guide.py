"""The loop as numbered steps for the project home (generate → compare → annotate / teacher-judge →
snapshot → train → evaluate → next round): each step's state in words, whether it is done, and the
next action as a link. A pure function of the home page's counts (selectors.project_loop_state), so
the rule is easy to read and test; the first step not done yet is the one to do now."""

STEP_TITLES = ("Generate", "Compare", "Annotate / teacher-judge", "Snapshot", "Train", "Evaluate", "Next round")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def loop_steps(state: dict) -> list[dict]:
    """[{number, title, state, done, actions: [(label, url name, query)]}], plus `current` on the
    first step not done. Url names take the project slug; a query string may follow."""
    comparisons = state.get("comparisons", {})
    runs = state.get("runs", {})
    compared = sum(comparisons.get(k, 0) for k in ("pending", "done", "disputed"))
    ready = state.get("prompts", 0) and state.get("model_versions", 0)
    steps = [
        {"done": state.get("generations", 0) > 0,
         "state": (_plural(state.get("generations", 0), "generation") if state.get("generations") else
                   f"{_plural(state.get('prompts', 0), 'prompt')}, {_plural(state.get('model_versions', 0), 'model version')}"),
         "actions": [("Generate answers", "generation_jobs", "")] if ready else
                    [("Import prompts and register models", "catalog_home", "")]},
        {"done": compared > 0, "state": f"{_plural(compared, 'comparison')}",
         "actions": [("Build comparisons", "comparisons_build", ""), ("Import preference data", "preference_upload", "")]},
        {"done": comparisons.get("done", 0) > 0 or state.get("judgements", 0) > 0,
         "state": f"{_plural(state.get('judgements', 0), 'judgement')} · {comparisons.get('pending', 0):,} open · "
                  f"{comparisons.get('disputed', 0):,} disputed",
         "actions": [("Annotate", "annotate", ""), ("Teacher-judge", "judge_jobs", "")]},
        {"done": state.get("snapshots", 0) > 0, "state": _plural(state.get("snapshots", 0), "snapshot"),
         "actions": [("Freeze a snapshot", "snapshot_list", "")]},
        {"done": runs.get("succeeded", 0) > 0,
         "state": f"{runs.get('succeeded', 0):,} trained · {runs.get('running', 0) + runs.get('queued', 0):,} in progress",
         "actions": [("Train a DCKD student", "training_new", "?method=dckd"), ("All methods", "training_runs", "")]},
        {"done": state.get("evaluations", 0) > 0, "state": _plural(state.get("evaluations", 0), "evaluation"),
         "actions": [("Evaluate against the base", "evaluation_list", "")]},
        {"done": state.get("loop_rounds", 0) > 0, "state": _plural(state.get("loop_rounds", 0), "round"),
         "actions": [("Start the next round", "evaluation_loop", "")]},
    ]
    current = next((i for i, s in enumerate(steps) if not s["done"]), len(steps) - 1)
    for index, (title, step) in enumerate(zip(STEP_TITLES, steps)):
        step.update(number=index + 1, title=title, current=index == current)
    return steps
