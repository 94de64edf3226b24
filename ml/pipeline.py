"""Pipeline rules that sit between the recipes and whoever runs them (the gpu worker, experiments):
the stage cache (π_dpo built once per input hash, atomically, even when two workers ask at once),
the index through which an ADPA+ run finds an earlier run's DCKD stage, the step offsets that put
an ADPA+ run's checkpoints on one step axis, the k-way ranking rule of the teacher-judge, and the
closed loop's queue priority. Plain paths, dicts and floats in and out; no database.

Stage cache layout, under one `root` (e.g. DATA_DIR/cache/stages):
    <kind>/<key>/final/         the finished stage (a model directory); its presence is the hit
    <kind>/<key>/work-<uuid>/   one build in progress (left behind only by a killed worker)
    <kind>/<key>.lock           a file lock (fcntl: released by the OS when its holder dies)
A build runs while holding the lock and ends with one rename of its output to final/, so a
half-built stage is never a hit, and a second worker waits for the first and then reuses its output.
"""
import dataclasses
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

LOCK_POLL_SECONDS = 1.0


class StageCancelled(Exception):
    """should_stop() turned true while waiting for another worker's build of the same stage."""


@dataclass
class StageResult:
    path: Path | None  # the stage's final/ directory; None when the build was stopped
    built: bool  # True: this call built it; False: it was already there (or another worker built it)


def stage_dir(root, kind: str, key: str) -> Path:
    return Path(root) / kind / key


def cached_stage(root, kind: str, key: str, build: Callable[[Path], Path | None], *,
                 should_stop: Callable[[], bool] = lambda: False, on_wait: Callable[[], None] = lambda: None) -> StageResult:
    """Returns the stage `kind`/`key`, building it first when missing. `build(work_dir)` trains into
    the fresh `work_dir` and returns the directory to publish (or None when it was stopped, which
    publishes nothing). Raises StageCancelled when should_stop() turns true while another worker
    holds the build; on_wait() is called once per second meanwhile (e.g. to say so on the page)."""
    folder = stage_dir(root, kind, key)
    final = folder / "final"
    if final.is_dir():
        return StageResult(final, built=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock")
    while True:
        try:
            lock.acquire(timeout=LOCK_POLL_SECONDS)
            break
        except Timeout:
            if should_stop():
                raise StageCancelled(f"stopped while another worker builds {kind}/{key[:12]}") from None
            on_wait()
    try:
        if final.is_dir():  # another worker built it while we waited
            return StageResult(final, built=False)
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("work-*"):  # a killed builder's; nobody else holds the lock
            shutil.rmtree(leftover, ignore_errors=True)
        work = folder / f"work-{uuid.uuid4().hex[:12]}"
        output = build(work)
        if output is None:
            return StageResult(None, built=True)
        os.replace(output, final)  # atomic: a half-built stage is never a hit
        shutil.rmtree(work, ignore_errors=True)  # the build's checkpoints; final/ is what is kept
        return StageResult(final, built=True)
    finally:
        lock.release()


# --- π_dpo: the teacher's DPO stage --------------------------------------------------------------

TEACHER_DPO_BETA = 0.01  # ALGORITHMS.md §3: the teacher's DPO stage


def teacher_dpo_config(run_config):
    """The DPO config of the teacher stage: the run's batching and schedule (for ADPA+ its DCKD
    stage's), β=0.01, no intermediate checkpoints."""
    from ml.config import DPOConfig, TrainingConfig

    first_stage = getattr(run_config, "dckd", run_config)
    shared = {f.name: getattr(first_stage, f.name) for f in dataclasses.fields(TrainingConfig)}
    return DPOConfig(**{**shared, "save_every_steps": 0}, beta=TEACHER_DPO_BETA)


def teacher_dpo_key(base: str, pairs: list, dpo_config) -> str:
    """Content hash of π_sft's files (and pinned revision), the pairs and the DPO config."""
    from ml.config import config_to_dict
    from ml.teacher_signals import cache_key, model_identity

    return cache_key("stage/teacher-dpo", models={"teacher": model_identity(base)}, data=pairs,
                     params=config_to_dict(dpo_config))


def teacher_dpo_stage(base: str, pairs: list, run_config, *, root, hooks, on_wait=lambda: None) -> StageResult:
    """π_dpo trained from `base` (π_sft) on `pairs`, from the stage cache under `root` or built now
    (once, even when two workers ask at once). path is None when hooks.should_stop() stopped it."""
    from ml.recipes import recipe_for

    dpo_config = teacher_dpo_config(run_config)
    key = teacher_dpo_key(base, pairs, dpo_config)

    def build(work_dir: Path) -> Path | None:
        result = recipe_for("dpo")(dpo_config, pairs, work_dir, hooks, student=base)
        return None if result.stopped else Path(result.final_dir)

    return cached_stage(root, "teacher-dpo", key, build, should_stop=hooks.should_stop, on_wait=on_wait)


# --- ADPA+: the DCKD stage index and the run's step axis ---------------------------------------

def stage_publish(root, kind: str, key: str, path) -> None:
    """Records that the finished stage `kind`/`key` lives at `path` (written atomically), so a later
    run with the same inputs finds it by key instead of searching other runs' folders."""
    entry = Path(root) / kind / f"{key}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    temp = entry.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(json.dumps({"key": key, "path": str(Path(path).resolve())}))
    os.replace(temp, entry)


def stage_lookup(root, kind: str, key: str) -> Path | None:
    """The published stage directory for `key`, if it still exists (it holds final/)."""
    entry = Path(root) / kind / f"{key}.json"
    if not entry.exists():
        return None
    path = Path(json.loads(entry.read_text())["path"])
    return path if (path / "final").is_dir() else None


def dckd_stage_reuse(config, pairs: list, *, student: str, teacher: str, out_dir, index_root) -> Path | None:
    """Before an ADPA+ run: links a finished DCKD stage with the same inputs (published by an earlier
    run) into out_dir/dckd, so the recipe skips to ADPA. Returns the stage reused, or None."""
    from ml.recipes import adpa_plus

    own = Path(out_dir) / "dckd"
    if own.exists():
        return None
    key = adpa_plus.dckd_stage_key(config, pairs, student=student, teacher=teacher)
    found = stage_lookup(index_root, "dckd", key)
    if found is None or not adpa_plus.stage_done(found, key):
        return None
    own.mkdir(parents=True)
    os.symlink(found.resolve() / "final", own / "final")
    (own / adpa_plus.STAGE_FILE).write_text((found / adpa_plus.STAGE_FILE).read_text())
    return found


def dckd_stage_publish(config, pairs: list, *, student: str, teacher: str, out_dir, index_root) -> bool:
    """After an ADPA+ run (any outcome): publishes its DCKD stage when it finished, for later runs."""
    from ml.recipes import adpa_plus

    own = Path(out_dir) / "dckd"
    key = adpa_plus.dckd_stage_key(config, pairs, student=student, teacher=teacher)
    if own.is_symlink() or (own / "final").is_symlink() or not adpa_plus.stage_done(own, key):
        return False  # not finished, or itself a reuse (the original stays the published one)
    stage_publish(index_root, "dckd", key, own)
    return True


def checkpoint_step(checkpoint_dir, offsets: dict[str, int]) -> int:
    """The run-wide step of a `checkpoint-<n>` directory: n plus the offset of the stage folder it is
    in (ADPA+ writes dckd/checkpoint-* from 0, then adpa/checkpoint-* from 0 again)."""
    path = Path(checkpoint_dir)
    return int(path.name.rsplit("-", 1)[-1]) + offsets.get(path.parent.name, 0)


def stage_offsets(out_dir) -> dict[str, int]:
    """Step offsets of a run's stage folders: ADPA+'s adpa/ starts where its finished DCKD stage ended
    (the step count the recipe wrote into dckd/stage.json); single-stage runs have none."""
    marker = Path(out_dir) / "dckd" / "stage.json"
    if not marker.exists():
        return {}
    return {"adpa": int(json.loads(marker.read_text()).get("steps", 0))}


# --- teacher-as-judge: k-way ranking ------------------------------------------------------------

def rank_by_mean_win(ids: list, pair_probs: list[tuple[int, int, float]]) -> tuple[dict, list[list]]:
    """A k-way comparison judged pair by pair: (i, j, P(ids[i] ≻ ids[j])) for each pair. Each
    candidate scores its mean win probability over its pairs (rounded to 1e-6 so near-equal scores
    tie); the ranking lists ties together, best first. Returns ({id: score}, [[id, ...], ...])."""
    wins = {gid: [] for gid in ids}
    for a, b, p in pair_probs:
        wins[ids[a]].append(p)
        wins[ids[b]].append(1 - p)
    scores = {gid: round(sum(p) / len(p), 6) if p else 0.5 for gid, p in wins.items()}
    ranking = [[g for g in ids if scores[g] == s] for s in sorted(set(scores.values()), reverse=True)]
    return scores, ranking


# --- the closed loop: queue priority -----------------------------------------------------------

def disagreement_priority(mean_kl: float | None, teacher_logps: list[float]) -> float:
    """How much the student's answer needs a person: the mean per-token KL(teacher ‖ student) when the
    two share a vocabulary, else how surprised the teacher is by it (mean negative log-likelihood)."""
    if mean_kl is not None:
        return float(mean_kl)
    return -sum(teacher_logps) / max(len(teacher_logps), 1)


# --- evaluation and the loop: greedy answers and the oracle's task ----------------------------

def greedy_answers(generator, inputs: list, *, max_new_tokens: int, batch_size: int, on_progress=None) -> list:
    """One greedy answer per prompt input (text or chat messages), as ml.generation outputs, from an
    ml.backends generator (HF over a loaded model, or vLLM)."""
    outputs = generator.generate(inputs, k=1, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 on_progress=on_progress)
    return [samples[0] for samples in outputs]


def answers_and_model(source: str, inputs: list, *, revision: str | None, backend: str, load: Callable,
                      max_new_tokens: int, batch_size: int, on_progress=None) -> tuple[list, object]:
    """(greedy answers on the generation `backend`, the model's HF LoadedModel for the signals and
    judges that follow), the model loaded by `load` (ml.modeling.load_model or the caller's). On HF one
    load serves both; on vLLM its engine answers and is closed before the HF load; an explicit vllm
    that cannot run raises BackendUnavailable before any model loads."""
    from ml.backends import generator_for, resolve

    backend = resolve(backend)
    loaded = load(source, revision=revision) if backend == "hf" else None
    with generator_for(source, revision=revision, backend=backend, loaded=loaded) as generator:
        outputs = greedy_answers(generator, inputs, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 on_progress=on_progress)
    return outputs, loaded or load(source, revision=revision)


def oracle_task(text: str, metadata: dict | None):
    """The demo oracle's task for a prompt: from its imported family/answer, else parsed from the text
    (None when it is not a demo task)."""
    from ml.demo.tasks import Task, task_from_prompt

    meta = metadata or {}
    if meta.get("family") and "answer" in meta:
        return Task(meta["family"], text, str(meta["answer"]))
    return task_from_prompt(text) if text else None
