"""Training runs on the gpu queue. The task claims the run (one conditional UPDATE), turns its
preference snapshot into plain ml.data pairs, calls the method's recipe with hooks bridged to a
RunRecorder (throttled metric points, heartbeat, live events, the cancel flag), and stores how it
ended through webapp services: cancelled with a resumable checkpoint, failed with its traceback, or
succeeded with a new student model version. DCKD/ADPA/ADPA+ without a π_dpo first get one trained
from π_sft on the snapshot (β=0.01) from the stage cache (ml.pipeline: built once per content hash,
atomically); an ADPA+ run reuses an earlier run's DCKD stage found by key in the stage index (teacher
signals and student generations are cached by content hash inside ml.teacher_signals).
An endpoint teacher (workers.endpoints, issue 17) is never loaded here: DCKD reads its top-K signals
from the server (ml.endpoints.signals, cached under DATA_DIR/cache/signals) and hands them to the
recipe; nothing can train an endpoint, so there is no π_dpo stage: the endpoint is the DPO teacher as
it is, which the run's stage line and its π_dpo (lineage, model card) say. ADPA takes π_dpo and π_sft
as two endpoint versions; sequence-level KD (SFT, target=teacher) trains on the endpoint's greedy
answers. Methods the endpoint's capability cannot serve, or that the worker does not run on an
endpoint (ADPA+, KD, TAID, DPO with the teacher as reference), fail with the reason."""
import dataclasses
import os
import socket
import time
import traceback
from pathlib import Path

from celery import shared_task
from django.conf import settings

from ml.backends import resolve
from ml.alignment import same_tokenizer
from ml.config import config_from_dict, config_to_dict, num_processes_of
from ml.cross_tokenizer import CROSS, cross_config, cross_method, mode_of
from ml.data import PreferencePair
from ml.modeling import TokenizerMismatchError, load_tokenizer, model_ref
from ml.pipeline import (TEACHER_DPO_BETA, StageCancelled, checkpoint_step, dckd_stage_publish, dckd_stage_reuse,
                         stage_offsets, teacher_dpo_stage)
from ml.recipes import recipe_for
from ml.recipes.hooks import Hooks, TrainResult
from webapp.training import services
from webapp.training.models import TrainingRun
from webapp.training.progress import RunRecorder
from workers import endpoints
from workers.checkpoint_evaluator import CheckpointEvaluator
from workers.launch import train_distributed
from workers.trackers import tracked

NEEDS_PI_DPO = ("dckd", "adpa", "adpa_plus")
ON_ENDPOINT = ("dckd", "adpa", "sft")  # methods this worker runs with an endpoint teacher (sft: target=teacher)


def _stages() -> Path:
    """The stage cache and its index (ml.pipeline), shared by every gpu worker on this data dir."""
    return settings.DATA_DIR / "cache" / "stages"


@shared_task(name="workers.tasks.gpu.training.train_run")
def train_run(run_id: int) -> str:
    attempt = services.run_claim(run_id=run_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    if attempt is None:
        return "not claimed"  # another worker has it, or it was cancelled while queued
    run = TrainingRun.objects.select_related("student", "teacher", "teacher_sft", "teacher_dpo", "snapshot",
                                             "resume_from").get(id=run_id)
    start = run.resume_from.step if run.resume_from else 0
    recorder = RunRecorder(run_id=run_id, attempt=attempt, start_step=start, log_tail=run.log_tail)
    evaluator = CheckpointEvaluator.for_run(run)  # checkpoint evaluations in a side thread, when asked for
    try:
        with recorder:
            result = _train(run, recorder, evaluator)
    except Exception as exc:
        if not recorder.lost:
            services.run_fail(run_id=run_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc(), log_tail=recorder.log_tail)
        evaluator and evaluator.close()
        return "failed"
    if recorder.lost:
        evaluator and evaluator.close()
        return "claim lost"  # the reaper (or a resume elsewhere) owns the run now
    if result.stopped:
        services.run_stopped(run_id=run_id, attempt=attempt, step=result.steps, checkpoint_dir=result.final_dir,
                             metrics=result.metrics, log_tail=recorder.log_tail)
        evaluator and evaluator.close()
        return "cancelled"
    services.run_succeed(run_id=run_id, attempt=attempt, steps=result.steps, final_dir=result.final_dir,
                         metrics=result.metrics, log_tail=recorder.log_tail)
    if evaluator:  # the run is already succeeded on its page; its last evaluation follows live
        evaluator.submit(result.steps, result.final_dir, final=True)
        evaluator.close()
    return "succeeded"


def snapshot_pairs(run: TrainingRun) -> list[PreferencePair]:
    """A chat prompt reaches training as its messages (ml.chat renders them), never as JSON text."""
    rows = run.snapshot.pairs.select_related("prompt").order_by("id")
    return [PreferencePair(prompt=row.prompt.messages or row.prompt_text, chosen=row.chosen_text,
                           rejected=row.rejected_text) for row in rows]


def _train(run: TrainingRun, recorder: RunRecorder, evaluator: CheckpointEvaluator | None = None) -> TrainResult:
    config = config_from_dict(run.method, run.config)
    pairs = snapshot_pairs(run)
    out_dir = services.run_dir(run.id)
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder.stage(f"loading {len(pairs)} preference pairs from {run.snapshot.name}")
    if (endpoint := endpoint_teacher(run, config)) is not None:
        return _train_on_endpoint(run, config, pairs, endpoint, out_dir, recorder, evaluator)
    method, config = _tokenizer_mode(run, config, recorder)  # a mismatched pair: ULD, or refused before any stage
    if run.method in ("adpa", "adpa_plus"):
        resolve(settings.GENERATION_BACKEND)  # an explicit vllm that cannot run fails now, not after π_dpo
    pi_dpo = _teacher_dpo(run, config, pairs, recorder) if run.method in NEEDS_PI_DPO else None
    if run.method in NEEDS_PI_DPO and pi_dpo is None:
        return TrainResult(final_dir=None, steps=0, metrics={}, stopped=True)  # cancelled during π_dpo
    if run.method == "adpa_plus":
        dckd_inputs = {"student": _ref(run.student), "teacher": pi_dpo, "out_dir": out_dir, "index_root": _stages()}
        if (reused := dckd_stage_reuse(config, pairs, **dckd_inputs)) is not None:
            recorder.stage(f"reusing the DCKD stage of {reused} (same inputs)")
    checkpoints = _CheckpointScanner(run, out_dir, evaluator)

    def on_progress(event):
        recorder.progress(**dataclasses.asdict(event))
        checkpoints.scan()

    recorder.stage(f"training ({run.get_method_display()})" + (f", resuming at step {run.resume_from.step}"
                                                              if run.resume_from else ""))
    resume_from = run.resume_from.path if run.resume_from else None
    models = _models(run, pi_dpo, out_dir)
    if method == "uld":  # KD / DCKD in cross-tokenizer mode: the (DPO) teacher and the student only
        models = {"student": models["student"], "teacher": models["teacher"]}
    with tracked(run, config, Hooks(on_progress=on_progress, should_stop=recorder.should_stop)) as hooks:
        if (processes := num_processes_of(config)) > 1:  # one run on several GPUs: a child process group
            result = train_distributed(method, config_to_dict(config), pairs, out_dir, hooks, num_processes=processes,
                                       resume_from=resume_from, **models)
        else:
            result = recipe_for(method)(config, pairs, out_dir, hooks, resume_from=resume_from, **models)
    checkpoints.scan(force=True)
    if run.method == "adpa_plus":
        dckd_stage_publish(config, pairs, **dckd_inputs)
    return result


def endpoint_teacher(run: TrainingRun, config):
    """The endpoint version this run would take its teacher from (π_dpo, else π_sft, else the teacher,
    as the method uses them), checked: raises EndpointRefused when its capability cannot serve the
    method or the worker does not run the method on an endpoint. None for a run on weights."""
    if run.method in NEEDS_PI_DPO:
        used = [run.teacher_dpo] if run.teacher_dpo is not None else [run.teacher_sft or run.teacher]
        used += [run.teacher_sft] if run.method in ("adpa", "adpa_plus") else []
    elif run.method in ("kd", "taid") or getattr(config, "target", "") == "teacher" \
            or getattr(config, "reference", "") == "teacher":
        used = [run.teacher]
    else:
        return None  # the method reads no teacher
    endpoint = next((version for version in used if endpoints.is_endpoint(version)), None)
    if endpoint is None:
        return None
    endpoints.check_use(endpoint, run.method)
    if run.method == "adpa" and not all(endpoints.is_endpoint(v) for v in (run.teacher_dpo, run.teacher_sft)):
        raise endpoints.EndpointRefused(
            f"ADPA with the endpoint teacher {endpoint.name} needs π_dpo and π_sft as two endpoint versions (no π_dpo "
            "stage can train an endpoint, and the advantage compares both on the same tokens)")
    if run.method not in ON_ENDPOINT:
        raise endpoints.EndpointRefused(
            f"{run.get_method_display()} with the endpoint teacher {endpoint.name} is not run by the worker yet "
            "(it runs DCKD and ADPA on endpoint signals, and sequence-level KD on endpoint answers); use a teacher "
            "with weights")
    return endpoint


def _train_on_endpoint(run, config, pairs, endpoint, out_dir: Path, recorder: RunRecorder, evaluator) -> TrainResult:
    """The teacher side from the endpoint first, then the recipe with no teacher to load: DCKD or ADPA
    on endpoint signals (_endpoint_signals; no π_dpo stage, since nothing here can train an
    endpoint), or sequence-level KD on the targets the endpoint writes (_endpoint_targets)."""
    if run.method == "sft":
        data, models = _endpoint_targets(config, pairs, endpoint, recorder), {}
        config = dataclasses.replace(config, target="chosen")  # the targets are already written
    else:
        data, signals = pairs, _endpoint_signals(run, config, pairs, endpoint, recorder)
        models = {"signals": str(getattr(signals, "path", signals))}
    recorder.stage(f"training ({run.get_method_display()}) on {endpoint.name}'s endpoint "
                   + ("targets" if run.method == "sft" else "signals")
                   + (f", resuming at step {run.resume_from.step}" if run.resume_from else ""))
    checkpoints = _CheckpointScanner(run, out_dir, evaluator)

    def on_progress(event):
        recorder.progress(**dataclasses.asdict(event))
        checkpoints.scan()

    resume_from = run.resume_from.path if run.resume_from else None
    models["student"] = _ref(run.student)
    with tracked(run, config, Hooks(on_progress=on_progress, should_stop=recorder.should_stop)) as hooks:
        if (processes := num_processes_of(config)) > 1:
            result = train_distributed(run.method, config_to_dict(config), data, out_dir, hooks,
                                       num_processes=processes, resume_from=resume_from, **models)
        else:
            result = recipe_for(run.method)(config, data, out_dir, hooks, resume_from=resume_from, **models)
    checkpoints.scan(force=True)
    return result


def _endpoint_targets(config, pairs, endpoint, recorder: RunRecorder) -> list:
    """Sequence-level KD's targets (ALGORITHMS.md §1): the endpoint's greedy answer to each pair's
    prompt, as SFTExamples (the recipe then trains on them as on chosen responses). Leading
    whitespace is dropped: vLLM's incremental detokenizer may prefix one the tokenizer's own decode lacks."""
    from ml.data import SFTExample

    recorder.stage(f"sequence-level KD: {endpoint.name} writes the {len(pairs)} targets through its server")
    prompts = [pair.prompt for pair in pairs]
    answers = endpoints.greedy_answers(endpoint, prompts, max_new_tokens=config.max_new_tokens)
    return [SFTExample(prompt, answer.text.lstrip()) for prompt, answer in zip(prompts, answers)]


def _endpoint_signals(run, config, pairs, endpoint, recorder: RunRecorder):
    """The teacher side from the server(s) into DATA_DIR/cache/signals: DCKD's top-K on the pairs
    (the endpoint is the DPO teacher as it is), or ADPA's advantages from the π_dpo and π_sft endpoints
    on the student's own greedy responses."""
    from ml.endpoints.signals import precompute_adpa_endpoint, precompute_dckd_endpoint
    from ml.modeling import load_tokenizer

    cache_dir = settings.DATA_DIR / "cache" / "signals"
    if run.method == "adpa":
        recorder.stage(f"advantages from the endpoints {run.teacher_dpo.name} (π_dpo) and {run.teacher_sft.name} "
                       "(π_sft) on the student's greedy responses")
        with endpoints.client_for(run.teacher_dpo) as dpo, endpoints.client_for(run.teacher_sft) as sft:
            return precompute_adpa_endpoint(dpo, sft, _ref(run.student), pairs, cache_dir=cache_dir, top_k=config.top_k,
                                            max_length=config.max_length, max_new_tokens=config.max_new_tokens,
                                            batch_size=config.batch_size, sft_floor=config.sft_floor,
                                            generation_backend=settings.GENERATION_BACKEND)
    recorder.stage(f"DPO teacher: the endpoint {endpoint.name}, as it is (no π_dpo stage: an endpoint cannot be "
                   "trained); its top-K signals from the server")
    services.teacher_endpoint_use(run=run, version=endpoint)
    with endpoints.client_for(endpoint) as client:
        return precompute_dckd_endpoint(client, pairs, student_tokenizer=load_tokenizer(_ref(run.student)),
                                        cache_dir=cache_dir, top_k=config.top_k, max_length=config.max_length,
                                        temperature=config.temperature)


def _tokenizer_mode(run: TrainingRun, config, recorder: RunRecorder):
    """(recipe method, config) for this run's teacher/student pair (ml.cross_tokenizer): the same
    tokenizer runs the method as it is; a different one runs KD and DCKD as ULD, sequence-level
    methods as they are, and refuses ADPA, ADPA+, TAID and teacher-as-reference DPO with the reason."""
    teacher = run.teacher_sft or run.teacher_dpo or run.teacher
    if teacher is None or same_tokenizer(load_tokenizer(_ref(teacher)), load_tokenizer(_ref(run.student))):
        return run.method, config
    method, refusal = cross_method(run.method, config)
    if refusal:
        raise TokenizerMismatchError(refusal)
    mode, why = mode_of(run.method, False)
    recorder.stage(f"different tokenizers ({teacher.name} / {run.student.name}): {mode}, {why}")
    return method, (cross_config(run.method, config) if mode == CROSS else config)


def _ref(model_version) -> str:
    """The model version as one string with its pinned hub revision ("org/name@rev", ml.modeling)."""
    return model_ref(model_version.source, model_version.revision or None)


def _models(run: TrainingRun, pi_dpo: str | None, out_dir: Path) -> dict:
    """The recipe's model arguments, by method (ml/recipes/<method>.train signatures)."""
    models = {"student": _ref(run.student)}
    teacher = _ref(run.teacher) if run.teacher else None
    if run.method in ("sft", "kd", "taid", "dpo"):
        models["teacher"] = teacher
    if run.method in NEEDS_PI_DPO:
        models.update(teacher=pi_dpo, cache_dir=settings.DATA_DIR / "cache" / "signals")
    if run.method in ("adpa", "adpa_plus"):  # the student's responses for ADPA's states: HF, or vLLM on GPU hosts
        models.update(teacher_sft=_ref(run.teacher_sft), generation_backend=settings.GENERATION_BACKEND)
    return models


def _teacher_dpo(run: TrainingRun, config, pairs: list, recorder: RunRecorder) -> str | None:
    """π_dpo's directory: the run's own, or the stage cache's (ml.pipeline.teacher_dpo_stage: keyed by
    π_sft's files, the pairs and the DPO config; a second run asking meanwhile waits, then reuses it).
    None when cancelled."""
    if run.teacher_dpo is not None:
        return _ref(run.teacher_dpo)
    base = run.teacher_sft or run.teacher
    recorder.stage(f"teacher DPO of {base.name} (β={TEACHER_DPO_BETA}) → π_dpo, from the stage cache or trained now")
    progress = lambda e: recorder.stage(f"teacher DPO step {e.step}/{e.total_steps}", quiet=True)  # noqa: E731
    waits = []

    def waiting():  # another worker builds the same π_dpo: say so once, then wait quietly
        recorder.stage("waiting for another worker's π_dpo build (same inputs)", quiet=bool(waits))
        waits.append(1)

    try:
        stage = teacher_dpo_stage(_ref(base), pairs, config, root=_stages(), on_wait=waiting,
                                  hooks=Hooks(progress, recorder.should_stop))
    except StageCancelled:
        return None
    if stage.path is None:
        return None
    recorder.stage(f"π_dpo for {base.name} {'trained' if stage.built else 'found in the stage cache'} ({stage.path.parent.name[:12]})")
    services.teacher_dpo_register(run=run, base=base, source=stage.path)
    return str(stage.path)


class _CheckpointScanner:
    """Registers checkpoint directories as the recipe writes them, on the run's one step axis
    (ml.pipeline.checkpoint_step). Scans happen between optimizer steps in the training thread, so a
    directory seen with its state file is complete."""

    MARKERS = ("training_state.json", "rng_state.pth")  # written last by ml.recipes.trainer / HF Trainer

    def __init__(self, run, out_dir: Path, evaluator=None):
        self.run, self.out_dir, self.seen, self.last, self.evaluator = run, out_dir, set(), 0.0, evaluator

    def scan(self, *, force: bool = False):
        if not force and time.monotonic() - self.last < 1.0:
            return
        self.last = time.monotonic()
        for path in self.out_dir.glob("**/checkpoint-*"):
            if path in self.seen or not any((path / m).exists() for m in self.MARKERS):
                continue
            step = checkpoint_step(path, stage_offsets(self.out_dir))
            services.checkpoint_record(run=self.run, step=step, path=path)
            self.seen.add(path)
            if self.evaluator is not None:
                self.evaluator.submit(step, path)
