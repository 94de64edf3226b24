"""ADPA recipe (ALGORITHMS.md §5): NLL on the dataset's chosen response minus the advantage-weighted
student probability mass at the states of the student's own greedy responses. Student responses and
advantages come from the cached ADPA signal (ml/teacher_signals.py); no teacher is loaded during the loop."""
import logging

from ml.config import ADPAConfig
from ml.losses.adpa import adpa_loss
from ml.losses.common import response_mask
from ml.recipes.batching import collate, forward_pair_logits, scatter_rows
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_student, main_process_first, run_trainer
from ml.teacher_signals import adpa_rows, check_params, precompute_adpa

log = logging.getLogger(__name__)


def signals_for(config: ADPAConfig, data, *, student, teacher, teacher_sft, cache_dir, device=None,
                generation_backend: str = "hf"):
    """The ADPA signal for this student and these teachers (cache hit when seen before); the student's
    greedy responses come from `generation_backend` (ml.backends)."""
    if teacher is None or teacher_sft is None or cache_dir is None:
        raise ValueError("ADPA needs either precomputed signals or teacher (pi_dpo), teacher_sft and a cache_dir")
    with main_process_first():  # several processes: rank 0 fills the cache, the others hit it
        return precompute_adpa(teacher, teacher_sft, student, data, cache_dir=cache_dir, top_k=config.top_k,
                               max_length=config.max_length, max_new_tokens=config.max_new_tokens,
                               batch_size=config.batch_size, device=device, sft_floor=config.sft_floor,
                               generation_backend=generation_backend)


def train(config: ADPAConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher=None,
          teacher_sft=None, signals=None, cache_dir=None, resume_from=None, device=None,
          generation_backend: str = "hf") -> TrainResult:
    """ADPA on PreferencePairs `data` from `student` (normally the SFT student). `teacher` is pi_dpo,
    `teacher_sft` pi_sft; both are only needed to fill the signal cache (tokenizers checked there), as
    is `generation_backend`, which writes the student's responses before the training model loads."""
    if signals is None:
        signals = signals_for(config, data, student=student, teacher=teacher, teacher_sft=teacher_sft,
                              cache_dir=cache_dir, device=device, generation_backend=generation_backend)
    path = getattr(signals, "path", signals)
    check_params(path, "adpa", sft_floor=config.sft_floor, top_k=config.top_k)
    rows = adpa_rows(path)
    if len(rows) != len(data):
        raise ValueError(f"signal file has {len(rows)} rows for {len(data)} pairs")
    log.info("ADPA advantage transform: %s", config.advantage_clip)
    loaded = load_student(student, config, device=device)
    pad_id = loaded.tokenizer.pad_token_id

    def make_batch(batch_rows):
        chosen = collate([r["chosen"] for r in batch_rows], pad_id)
        states = collate([r["student"] for r in batch_rows], pad_id)
        length = states["labels"].shape[1]
        states["topk_ids"] = scatter_rows([r["topk_ids"] for r in batch_rows], states["response_start"], length)
        states["advantages"] = scatter_rows([r["advantages"] for r in batch_rows], states["response_start"], length)
        num_tokens = int(chosen["attention_mask"].sum() + states["attention_mask"].sum())
        return {"chosen": chosen, "states": states, "num_tokens": num_tokens}

    def step_loss(model, batch):
        chosen, states = batch["chosen"], batch["states"]
        chosen_logits, state_logits = forward_pair_logits(model, chosen, states, pad_id)  # (B,T,V), (B,T',V)
        device_ = chosen_logits.device
        loss, metrics = adpa_loss(chosen_logits, chosen["labels"].to(device_), state_logits,
                                  response_mask(states["labels"]).to(device_), states["topk_ids"].to(device_),
                                  states["advantages"].to(device_), weight=config.weight,
                                  nll_weight=config.nll_weight, advantage_clip=config.advantage_clip)
        return loss, metrics

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
