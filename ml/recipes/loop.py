"""The plain torch training loop the hand-written recipes share (DPO goes through TRL instead):
seeded data order, gradient accumulation, AdamW with a warm-up schedule, progress events, the
cooperative stop, and checkpoints that resume exactly (model weights, optimizer, scheduler, RNG and
per-step history). A recipe supplies only `make_batch(rows)` and `step_loss(model, batch)`; the loop
is a function, not a base class, so each recipe reads top to bottom."""
import copy
import json
import math
import random
import resource
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file
from transformers import get_scheduler

from ml.config import config_to_dict, method_of
from ml.modeling import LoadedModel, LoraSpec, load_model
from ml.recipes.hooks import Hooks, ProgressEvent, TrainResult

STATE_FILE = "trainer_state.pt"
ADAPTER_DIR = "adapter"
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def load_student(source, config, *, device=None) -> LoadedModel:
    """The trainable student: a path/hub id (loaded, LoRA-wrapped when config.lora) or a LoadedModel.
    Seeded first so LoRA's random init is reproducible. Weights stay float32 even on CUDA (the loop
    autocasts to bf16): a 5e-7 AdamW update vanishes below bf16's resolution."""
    if isinstance(source, LoadedModel):
        return source
    torch.manual_seed(config.seed)
    lora = LoraSpec(r=config.lora_r, alpha=config.lora_alpha) if config.lora else None
    return load_model(str(source), device=device, dtype=torch.float32, lora=lora, trainable=True)


def load_frozen(source, *, device=None) -> LoadedModel:
    """A frozen teacher/reference in eval mode (a LoadedModel passes through)."""
    return source if isinstance(source, LoadedModel) else load_model(str(source), device=device)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def save_model_dir(model, tokenizer, path: Path) -> Path:
    """HF model dir (safetensors + tokenizer). A LoRA model is saved merged, so every checkpoint is a
    loadable model version; its adapter goes beside it in adapter/ for resuming."""
    path.mkdir(parents=True, exist_ok=True)
    if is_peft(model):
        model.save_pretrained(path / ADAPTER_DIR)
        merged = copy.deepcopy(model).merge_and_unload()  # a copy: merging in place would perturb training
        merged.save_pretrained(path)
    else:
        model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _load_weights(model, path: Path) -> None:
    if is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(path / ADAPTER_DIR / "adapter_model.safetensors")))
        return
    state = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # save_pretrained drops tied copies (lm_head tied to the embeddings); any other gap is an error.
    tied = {n for n, p in model.state_dict().items() if any(
        p.data_ptr() == q.data_ptr() for m, q in model.state_dict().items() if m != n)}
    if unexpected or set(missing) - tied:
        raise ValueError(f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, loaded, optimizer, scheduler, step, total_steps, history, config, extra=None):
    save_model_dir(loaded.model, loaded.tokenizer, path)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": _rng_state(), "history": history,
                "extra": extra.state_dict() if extra is not None else None}, path / STATE_FILE)
    (path / "training_state.json").write_text(json.dumps(
        {"method": method_of(config), "step": step, "total_steps": total_steps, "config": config_to_dict(config)},
        indent=2))
    return path


def plan(num_rows: int, config) -> tuple[int, int]:
    """(steps_per_epoch, total_steps). max_steps > 0 overrides the epoch count, as in HF Trainer."""
    micro_per_epoch = math.ceil(num_rows / config.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum)
    total = config.max_steps or config.num_epochs * steps_per_epoch
    return steps_per_epoch, total


def micro_batches(step: int, num_rows: int, config, steps_per_epoch: int) -> list:
    """Row indices of each micro-batch of optimizer step `step`: a fixed permutation per epoch
    (seed + epoch), so a resumed run needs no RNG to find its place."""
    epoch, within = divmod(step, steps_per_epoch)
    order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
    first = within * config.grad_accum * config.batch_size
    last = min(num_rows, first + config.grad_accum * config.batch_size)
    return [order[i: min(i + config.batch_size, last)] for i in range(first, last, config.batch_size)]


def memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_loop(*, loaded: LoadedModel, config, rows: list, make_batch: Callable, step_loss: Callable,
             output_dir, hooks: Hooks | None = None, resume_from=None, extra=None,
             after_step: Callable | None = None) -> TrainResult:
    """Train `loaded.model` on `rows`. make_batch(list of rows) -> dict (with "num_tokens");
    step_loss(model, batch) -> (loss (), metrics {name: ()}); batch also carries "step" and "micro"
    (for recipes that sample). `extra` (state_dict/load_state_dict) rides along in checkpoints;
    after_step(loss: float) runs after each optimizer step (TAID's schedule)."""
    hooks, output_dir = hooks or Hooks(), Path(output_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    if not rows:
        raise ValueError("no training rows")
    steps_per_epoch, total_steps = plan(len(rows), config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(SCHEDULERS[config.lr_scheduler], optimizer,
                              num_warmup_steps=math.ceil(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    step, history, checkpoints = 0, [], []
    torch.manual_seed(config.seed)
    if resume_from is not None:
        resume_from = Path(resume_from)
        state = torch.load(resume_from / STATE_FILE, weights_only=True)
        _load_weights(model, resume_from)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, history = state["step"], list(state["history"])
        if extra is not None and state["extra"] is not None:
            extra.load_state_dict(state["extra"])

    def checkpoint(at_step):
        path = save_checkpoint(output_dir / f"checkpoint-{at_step}", loaded=loaded, optimizer=optimizer,
                               scheduler=scheduler, step=at_step, total_steps=total_steps, history=history,
                               config=config, extra=extra)
        checkpoints.append(path)
        return path

    on_cuda = next(model.parameters()).device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda)
    model.train()
    while step < total_steps:
        if hooks.should_stop():
            path = checkpoint(step)
            return TrainResult(path, step, dict(history[-1]) if history else {}, checkpoints, True, history)
        started, lr = time.perf_counter(), scheduler.get_last_lr()[0]
        optimizer.zero_grad(set_to_none=True)
        groups = micro_batches(step, len(rows), config, steps_per_epoch)
        sums, num_tokens = {}, 0
        for micro, indices in enumerate(groups):
            batch = make_batch([rows[i] for i in indices])
            batch.update(step=step, micro=micro)
            with autocast:
                loss, metrics = step_loss(model, batch)
            (loss / len(groups)).backward()
            num_tokens += int(batch["num_tokens"])
            for name, value in {"loss": loss.detach(), **metrics}.items():
                sums[name] = sums.get(name, 0.0) + float(value) / len(groups)
        if config.max_grad_norm > 0:
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
        optimizer.step()
        scheduler.step()
        step += 1
        loss_value = sums.pop("loss")
        if after_step is not None:
            after_step(loss_value)
        history.append({"step": step, "loss": loss_value, "lr": lr, **sums})
        elapsed = max(time.perf_counter() - started, 1e-9)
        hooks.on_progress(ProgressEvent(step=step, total_steps=total_steps, epoch=step / steps_per_epoch,
                                        loss=loss_value, metrics=sums, tokens_per_s=num_tokens / elapsed,
                                        lr=lr, memory_mb=memory_mb()))
        if config.save_every_steps and step % config.save_every_steps == 0 and step < total_steps:
            checkpoint(step)
    final_dir = save_model_dir(model, tokenizer, output_dir / "final")
    return TrainResult(final_dir, step, dict(history[-1]) if history else {}, checkpoints, False, history)
