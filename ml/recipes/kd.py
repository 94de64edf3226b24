"""Token-level KD recipe (ALGORITHMS.md §2): forward KL, reverse KL or generalized JSD between the
teacher's and the student's next-token distributions on each response token. With probability
on_policy_fraction a micro-batch's responses are first sampled from the student (generalized KD);
the draw is seeded by (seed, step, micro-batch), so a resumed run makes the same choices. It runs on
the same library Trainer as every recipe (ml/recipes/trainer.py) rather than TRL's GKDTrainer, which
computes its own JSD and reads conversational datasets: here the loss stays ml.losses.kd_loss, tested
against hand-worked values, and on-policy and offline KD share one code path."""
import random

import torch

from ml.config import KDConfig
from ml.generation import generate
from ml.losses.kd import kd_loss
from ml.losses.common import response_mask
from ml.modeling import check_same_tokenizer
from ml.recipes.batching import Encoded, collate, encode, forward_logits
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_frozen, load_student, run_trainer
from ml.recipes.sft import as_sft_examples


def train(config: KDConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher,
          resume_from=None, device=None) -> TrainResult:
    """KD from `teacher` (kept loaded, frozen) into `student` on SFTExamples or PreferencePairs (chosen)."""
    examples = as_sft_examples(data)
    loaded = load_student(student, config, device=device)
    frozen = load_frozen(teacher, device=device)
    check_same_tokenizer(frozen.tokenizer, loaded.tokenizer, method="token-level KD")
    tokenizer = loaded.tokenizer
    rows = [(e.prompt, encode(tokenizer, e.prompt, e.response, config.max_length)) for e in examples]

    def on_policy(batch_rows, model, step, micro):
        outputs = generate(getattr(model, "module", model), tokenizer,  # DDP wraps the model in .module
                           [prompt for prompt, _ in batch_rows], k=1, temperature=1.0,
                           max_new_tokens=config.max_new_tokens, seed=config.seed * 1_000_003 + step * 997 + micro,
                           batch_size=len(batch_rows))
        return [Encoded(enc.prompt_ids, (out[0].token_ids or [tokenizer.eos_token_id])[
            : max(1, config.max_length - len(enc.prompt_ids))]) for (_, enc), out in zip(batch_rows, outputs)]

    def make_batch(batch_rows):
        return {"rows": batch_rows, "num_tokens": sum(len(e.prompt_ids) + len(e.response_ids) for _, e in batch_rows)}

    def step_loss(model, batch):
        sampled = random.Random(f"{config.seed}/{batch['step']}/{batch['micro']}").random()
        encoded = (on_policy(batch["rows"], model, batch["step"], batch["micro"])
                   if sampled < config.on_policy_fraction else [e for _, e in batch["rows"]])
        collated = collate(encoded, tokenizer.pad_token_id)
        student_logits = forward_logits(model, collated)
        with torch.no_grad():
            teacher_logits = forward_logits(frozen.model, collated).to(student_logits.device)
        mask = response_mask(collated["labels"]).to(student_logits.device)
        loss, metrics = kd_loss(student_logits, teacher_logits, mask, kind=config.kind, beta=config.beta,
                                temperature=config.temperature)
        return loss, {**metrics, "on_policy": torch.tensor(float(sampled < config.on_policy_fraction))}

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
