"""REDI recipe (ALGORITHMS.md §6): reference-free, raises the length-normalised log-likelihood of
each positive trace (a pair's chosen) and lowers that of the negative (its rejected) with weight
alpha. Run it on a student that already had SFT on the positives."""
from ml.config import REDIConfig
from ml.losses.redi import redi_loss
from ml.recipes.batching import collate, encode, forward_logits
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_student, run_trainer


def train(config: REDIConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher=None,
          resume_from=None, device=None) -> TrainResult:
    """REDI on PreferencePairs `data` (chosen = positive trace, rejected = negative). No teacher."""
    loaded = load_student(student, config, device=device)
    tokenizer = loaded.tokenizer
    rows = [(encode(tokenizer, p.prompt, p.chosen, config.max_length),
             encode(tokenizer, p.prompt, p.rejected, config.max_length)) for p in data]

    def make_batch(batch_rows):
        positive = collate([pos for pos, _ in batch_rows], tokenizer.pad_token_id)
        negative = collate([neg for _, neg in batch_rows], tokenizer.pad_token_id)
        num_tokens = int(positive["attention_mask"].sum() + negative["attention_mask"].sum())
        return {"positive": positive, "negative": negative, "num_tokens": num_tokens}

    def step_loss(model, batch):
        pos_logits = forward_logits(model, batch["positive"])
        neg_logits = forward_logits(model, batch["negative"])
        return redi_loss(pos_logits, batch["positive"]["labels"].to(pos_logits.device), neg_logits,
                         batch["negative"]["labels"].to(neg_logits.device), alpha=config.alpha)

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
