"""DCKD recipe (ALGORITHMS.md §4): NLL on the chosen response plus forward KL from the DPO teacher
on both the chosen and the rejected response, the teacher side read from the cached top-K signal
(ml/teacher_signals.py), so the teacher is loaded only to fill a cache miss and never during the loop."""
from ml.config import DCKDConfig
from ml.losses.dckd import dckd_loss
from ml.modeling import check_same_tokenizer, load_tokenizer
from ml.recipes.batching import collate, forward_pair_logits, scatter_rows
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_student, main_process_first, run_trainer
from ml.teacher_signals import check_params, dckd_rows, precompute_dckd


def _tokenizer_of(model):
    return model.tokenizer if hasattr(model, "tokenizer") else load_tokenizer(str(model))


def train(config: DCKDConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher=None,
          signals=None, cache_dir=None, resume_from=None, device=None) -> TrainResult:
    """Distil the DPO teacher `teacher` (pi_dpo) into `student` on PreferencePairs `data`.

    `signals`: a precomputed DCKD signal file (SignalFile or path) at config.temperature; otherwise it
    is computed from `teacher` into `cache_dir` (a hit when the same teacher files, pairs, top-K and
    temperature were seen before)."""
    if signals is None:
        if teacher is None or cache_dir is None:
            raise ValueError("DCKD needs either precomputed signals or a teacher and a cache_dir")
        check_same_tokenizer(_tokenizer_of(teacher), _tokenizer_of(student), method="DCKD")
        with main_process_first():  # several processes: rank 0 fills the cache, the others hit it
            signals = precompute_dckd(teacher, data, cache_dir=cache_dir, top_k=config.top_k,
                                      max_length=config.max_length, batch_size=config.batch_size, device=device,
                                      temperature=config.temperature)
    path = getattr(signals, "path", signals)
    check_params(path, "dckd", temperature=config.temperature, top_k=config.top_k)
    rows = dckd_rows(path)
    if len(rows) != len(data):
        raise ValueError(f"signal file has {len(rows)} rows for {len(data)} pairs")
    loaded = load_student(student, config, device=device)
    pad_id = loaded.tokenizer.pad_token_id

    def make_batch(batch_rows):
        batch = {}
        for side in ("chosen", "rejected"):
            collated = collate([r[side] for r in batch_rows], pad_id)
            length = collated["labels"].shape[1]
            collated["topk_ids"] = scatter_rows([r[f"{side}_topk_ids"] for r in batch_rows],
                                                collated["response_start"], length)
            collated["topk_probs"] = scatter_rows([r[f"{side}_topk_probs"] for r in batch_rows],
                                                  collated["response_start"], length)
            batch[side] = collated
        batch["num_tokens"] = int(batch["chosen"]["attention_mask"].sum() + batch["rejected"]["attention_mask"].sum())
        return batch

    def step_loss(model, batch):
        chosen, rejected = batch["chosen"], batch["rejected"]
        chosen_logits, rejected_logits = forward_pair_logits(model, chosen, rejected, pad_id)  # (B,T,V), (B,T',V)
        device_ = chosen_logits.device
        return dckd_loss(chosen_logits, chosen["labels"].to(device_), chosen["topk_ids"].to(device_),
                         chosen["topk_probs"].to(device_), rejected_logits, rejected["labels"].to(device_),
                         rejected["topk_ids"].to(device_), rejected["topk_probs"].to(device_),
                         alpha_w=config.alpha_w, alpha_l=config.alpha_l, nll_weight=config.nll_weight,
                         temperature=config.temperature)

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
