"""TAID recipe (ALGORITHMS.md §6): cross-entropy of the student to a logit interpolation between its
own detached logits and the teacher's, the weight t moved from t_start toward 1 by TaidSchedule after
every optimizer step; the schedule's state travels in checkpoints so a resumed run continues its t."""
import torch

from ml.config import TAIDConfig
from ml.losses.common import response_mask
from ml.losses.taid import TaidSchedule, taid_loss
from ml.modeling import check_same_tokenizer
from ml.recipes.batching import collate, encode, forward_logits
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_frozen, load_student, plan, run_trainer, world_size
from ml.recipes.sft import as_sft_examples


def train(config: TAIDConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher,
          resume_from=None, device=None) -> TrainResult:
    """TAID from `teacher` (kept loaded, frozen) into `student` on SFTExamples or PreferencePairs."""
    examples = as_sft_examples(data)
    loaded = load_student(student, config, device=device)
    frozen = load_frozen(teacher, device=device)
    check_same_tokenizer(frozen.tokenizer, loaded.tokenizer, method="TAID")
    pad_id = loaded.tokenizer.pad_token_id
    rows = [encode(loaded.tokenizer, e.prompt, e.response, config.max_length) for e in examples]
    # TaidSchedule climbs toward 1; a config with t_end < 1 caps the t each step uses.
    _, total_steps = plan(len(rows), config, world_size())
    schedule = TaidSchedule(total_steps, t_start=config.t_start, alpha=config.alpha, beta=config.beta)

    def make_batch(batch_rows):
        batch = collate(batch_rows, pad_id)
        batch["num_tokens"] = int(batch["attention_mask"].sum())
        return batch

    def step_loss(model, batch):
        student_logits = forward_logits(model, batch)
        with torch.no_grad():
            teacher_logits = forward_logits(frozen.model, batch).to(student_logits.device)
        mask = response_mask(batch["labels"]).to(student_logits.device)
        return taid_loss(student_logits, teacher_logits, mask, t=min(schedule.t, config.t_end))

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from, extra=schedule,
                       after_step=schedule.update)
