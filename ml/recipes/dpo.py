"""DPO recipe (ALGORITHMS.md §3) through TRL's DPOTrainer, the one method where a library trainer
runs the loop: our config maps onto trl.DPOConfig, our hooks ride on a TrainerCallback, and the
checkpoints are the Trainer's own (model, optimizer, scheduler, RNG), so resuming is
`trainer.train(resume_from_checkpoint=...)`. reference="teacher" is teacher-as-reference DPO."""
import copy
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from ml import trackers
from ml.config import DPOConfig
from ml.data import PreferencePair
from ml.chat import prompt_ids, response_ids
from ml.modeling import check_same_tokenizer, load_model
from ml.recipes.hooks import Hooks, ProgressEvent, TrainResult
from ml.recipes.trainer import agreed_stop, load_frozen, memory_mb, plan, save_model_dir
from ml.tracker_runs import tracker_callbacks

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class HooksCallback(TrainerCallback):
    """Bridges Trainer logs to ProgressEvents and should_stop() to a save-then-stop; one log per step."""

    def __init__(self, hooks: Hooks, history: list):
        self.hooks, self.history, self.stopped = hooks, history, False
        self._last_time, self._last_tokens = time.perf_counter(), 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:  # the end-of-training summary log, not a step
            return control
        now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
        metrics = {k: float(v) for k, v in logs.items() if k not in ("loss", "learning_rate", "epoch")}
        event = ProgressEvent(step=state.global_step, total_steps=state.max_steps, epoch=float(state.epoch or 0),
                              loss=float(logs["loss"]), metrics=metrics,
                              tokens_per_s=(tokens - self._last_tokens) / max(now - self._last_time, 1e-9),
                              lr=float(logs.get("learning_rate", 0.0)), memory_mb=memory_mb())
        self._last_time, self._last_tokens = now, tokens
        self.history.append({"step": event.step, "loss": event.loss, "lr": event.lr, **metrics})
        self.hooks.on_progress(event)
        if agreed_stop(self.hooks):  # every rank of a multi-process run stops at the same step
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control


def dpo_dataset(tokenizer, pairs: list) -> Dataset:
    """Rows {prompt_ids, chosen_ids, rejected_ids} tokenized by ml.chat, the path generation and every
    other recipe use (template, BOS as the tokenizer expects, responses closed by the end-of-turn
    token, tokenized apart from the prompt): TRL's own text tokenization, which appends eos and
    tokenizes prompt + response jointly, is skipped (chat_tokenized_trainer)."""
    rows = [{"prompt_ids": prompt_ids(tokenizer, p.prompt), "chosen_ids": response_ids(tokenizer, p.chosen),
             "rejected_ids": response_ids(tokenizer, p.rejected)} for p in pairs]
    return Dataset.from_list(rows)


def chat_tokenized_trainer():
    """trl.DPOTrainer taking rows already tokenized by dpo_dataset (only its max_length filter is kept)."""
    from trl import DPOTrainer

    class ChatTokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if args.max_length is not None and args.truncation_mode == "keep_start":
                dataset = dataset.filter(lambda row: len(row["prompt_ids"]) < args.max_length)
            return dataset

    return ChatTokenizedDPOTrainer


def trl_config(config: DPOConfig, output_dir: Path, num_rows: int, *, report_to=(), run_name: str = ""):
    from trl import DPOConfig as TRLDPOConfig

    _, total = plan(num_rows, config)
    warmup = config.warmup_ratio if config.warmup_ratio < 1 else total  # TRL reads 1.0 as "one step"
    return TRLDPOConfig(
        output_dir=str(output_dir), beta=config.beta, learning_rate=config.learning_rate,
        lr_scheduler_type=SCHEDULERS[config.lr_scheduler], warmup_steps=warmup,
        num_train_epochs=config.num_epochs, max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length, max_grad_norm=config.max_grad_norm, seed=config.seed, data_seed=config.seed,
        precompute_ref_log_probs=config.precompute_ref_log_probs, logging_steps=1,
        **trackers.trainer_kwargs(report_to, run_name),
        save_strategy="steps" if config.save_every_steps else "no", save_steps=config.save_every_steps or 500,
        gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
        disable_tqdm=True, dataloader_num_workers=0,
        # RPO's NLL anchor: TRL 1.x dropped `rpo_alpha` for this loss_type/loss_weights pair (same sum).
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, config.rpo_alpha]} if config.rpo_alpha else {}),
    )


def train(config: DPOConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher=None,
          resume_from=None, device=None) -> TrainResult:
    """DPO of `student` on PreferencePairs `data`; with config.reference == "teacher", `teacher` is pi_ref."""
    hooks, output_dir = hooks or Hooks(), Path(output_dir)
    if not data or not all(isinstance(p, PreferencePair) for p in data):
        raise ValueError("DPO needs a non-empty list of PreferencePairs")
    torch.manual_seed(config.seed)
    loaded = student if hasattr(student, "model") else load_model(str(student), device=device, dtype=torch.float32,
                                                                       trainable=True)
    ref_model = None
    if config.reference == "teacher":
        if teacher is None:
            raise ValueError("reference='teacher' needs a teacher")
        frozen = load_frozen(teacher, device=device)
        check_same_tokenizer(frozen.tokenizer, loaded.tokenizer, method="teacher-as-reference DPO")
        ref_model = frozen.model
    elif not config.precompute_ref_log_probs and not config.lora:
        ref_model = copy.deepcopy(loaded.model).eval().requires_grad_(False)  # a frozen copy of the start
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, task_type="CAUSAL_LM",
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    history = []
    callback = HooksCallback(hooks, history)
    trainer = chat_tokenized_trainer()(
        model=loaded.model, ref_model=ref_model, args=trl_config(config, output_dir, len(data), report_to=hooks.report_to,
                                                              run_name=hooks.run_name),
        train_dataset=dpo_dataset(loaded.tokenizer, data), processing_class=loaded.tokenizer,
        callbacks=[callback, *tracker_callbacks(hooks.report_to)], peft_config=peft_config)
    # With tqdm disabled the Trainer prints every log dict to stdout; progress goes through our hooks.
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    step = trainer.state.global_step
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if callback.stopped:
        final_dir = output_dir / f"checkpoint-{step}"
    else:
        final_dir = save_model_dir(trainer.model, loaded.tokenizer, output_dir / "final")
    return TrainResult(final_dir, step, dict(history[-1]) if history else {}, checkpoints, callback.stopped,
                       history)
