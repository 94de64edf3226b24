"""ADPA+ pipeline (ALGORITHMS.md §5): DCKD from the given student, then ADPA starting from the DCKD
student, whose greedy responses (not the original student's) supply ADPA's states. Each stage writes
under its own folder with a stage.json naming the hash of its inputs; a stage whose output already
exists for the same inputs is skipped, and the signal caches are keyed by content the same way."""
import json
from pathlib import Path

from ml.config import ADPAPlusConfig, config_to_dict
from ml.recipes import adpa, dckd
from ml.recipes.hooks import Hooks, ProgressEvent, TrainResult
from ml.recipes.trainer import plan, world_size
from ml.teacher_signals import cache_key, model_identity

STAGE_FILE = "stage.json"


def dckd_stage_key(config: ADPAPlusConfig, data, *, student, teacher) -> str:
    """Content hash of the DCKD stage's inputs (student and pi_dpo files, pairs, DCKD config): a
    finished stage with this key, in this run or another, can be reused as is."""
    return cache_key("stage/dckd", models={"student": model_identity(student), "dpo": model_identity(teacher)},
                     data=data, params=config_to_dict(config.dckd))


def stage_done(stage_dir: Path, key: str) -> bool:
    """Whether `stage_dir` holds a finished stage (final/ model) recorded under `key`."""
    marker = Path(stage_dir) / STAGE_FILE
    return marker.exists() and json.loads(marker.read_text()).get("key") == key and (marker.parent / "final").is_dir()


def _offset_hooks(hooks: Hooks, offset: int, total: int, stage: str) -> Hooks:
    """Report both stages as one run: steps continue across stages, metric names carry the stage."""
    def relay(event: ProgressEvent):
        hooks.on_progress(ProgressEvent(step=offset + event.step, total_steps=total, epoch=event.epoch,
                                        loss=event.loss, metrics={f"{stage}/{k}": v for k, v in event.metrics.items()},
                                        tokens_per_s=event.tokens_per_s, lr=event.lr, memory_mb=event.memory_mb))
    return Hooks(on_progress=relay, should_stop=hooks.should_stop)


def train(config: ADPAPlusConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher,
          teacher_sft, cache_dir, resume_from=None, device=None, generation_backend: str = "hf") -> TrainResult:
    """DCKD (`teacher` = pi_dpo) then ADPA (pi_dpo and `teacher_sft` = pi_sft). `resume_from` may be a
    checkpoint of either stage (it lives under output_dir/dckd or output_dir/adpa). The DCKD student's
    responses for ADPA come from `generation_backend` (ml.backends)."""
    hooks, output_dir = hooks or Hooks(), Path(output_dir)
    dckd_steps = plan(len(data), config.dckd, world_size())[1]
    total = dckd_steps + plan(len(data), config.adpa, world_size())[1]
    resume_stage = Path(resume_from).parent.name if resume_from else None

    dckd_dir = output_dir / "dckd"
    dckd_key = dckd_stage_key(config, data, student=student, teacher=teacher)
    if not stage_done(dckd_dir, dckd_key):
        result = dckd.train(config.dckd, data, dckd_dir, _offset_hooks(hooks, 0, total, "dckd"), student=student,
                            teacher=teacher, cache_dir=cache_dir, device=device,
                            resume_from=resume_from if resume_stage == "dckd" else None)
        if result.stopped:
            return result
        (dckd_dir / STAGE_FILE).write_text(json.dumps({"key": dckd_key, "steps": result.steps}))
    dckd_student = dckd_dir / "final"

    result = adpa.train(config.adpa, data, output_dir / "adpa", _offset_hooks(hooks, dckd_steps, total, "adpa"),
                        student=dckd_student, teacher=teacher, teacher_sft=teacher_sft, cache_dir=cache_dir,
                        device=device, resume_from=resume_from if resume_stage == "adpa" else None,
                        generation_backend=generation_backend)
    result.steps += dckd_steps
    return result
