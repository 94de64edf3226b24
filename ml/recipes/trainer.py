"""The library trainer every hand-written recipe runs on (DPO uses TRL's DPOTrainer instead):
transformers' `Trainer`, so accelerate brings DDP/FSDP/DeepSpeed, bf16, gradient checkpointing,
gradient accumulation and checkpoint/resume, and Liger kernels apply where installed. `RecipeTrainer`
only wires a recipe's batches into its pure loss (`compute_loss` calls `step_loss`); `HooksCallback`
turns each optimizer step into a ProgressEvent and checks the cooperative stop. A recipe supplies
`make_batch(rows)` (the collator) and `step_loss(model, batch)`; `run_trainer` is a function, not a
base class, so each recipe still reads top to bottom. Data order is a fixed permutation per epoch
(seed + epoch), sharded across processes by accelerate, so a resumed run needs no RNG to find its
place and 2 + 2 steps give bit-for-bit the weights of 4."""
import contextlib
import copy
import functools
import importlib.util
import json
import math
import resource
import time
from pathlib import Path
from typing import Callable

import accelerate.optimizer
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from ml import trackers
from ml.config import config_to_dict, method_of
from ml.distributed import is_main_process, world_size  # noqa: F401  (re-exported for the recipes)
from ml.modeling import LoadedModel, LoraSpec, load_model
from ml.recipes.hooks import Hooks, ProgressEvent, TrainResult
from ml.tracker_runs import tracker_callbacks

ADAPTER_DIR = "adapter"
RECIPE_STATE = "recipe_state.pt"  # per-step history and the recipe's `extra` state (TAID's schedule)
MARKER = "training_state.json"  # written last into a checkpoint: its presence means the dir is complete
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
LOG_EVERY = 50  # the Trainer's own log (trainer_state.json); the per-step figures go through HooksCallback

# accelerate's optimizer wrapper asks importlib twice per optimizer step whether the LOMO package is
# installed (a walk over sys.path, ~0.2 ms each, the largest fixed cost per step on a small model).
# The answer cannot change within a process, so it is asked once. This also serves TRL's DPOTrainer.
if not hasattr(accelerate.optimizer.is_lomo_available, "cache_info"):
    accelerate.optimizer.is_lomo_available = functools.cache(accelerate.optimizer.is_lomo_available)


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. fills a signal cache), the other ranks after it (a cache hit)."""
    if world_size() <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


def agreed_stop(hooks: Hooks) -> bool:
    """hooks.should_stop(), agreed by every rank (any one asking stops all): a rank leaving the loop
    alone would leave the others waiting forever in the next gradient all-reduce."""
    stop = bool(hooks.should_stop())
    if world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        on_gpu = torch.distributed.get_backend() == "nccl"
        flag = torch.tensor([1.0 if stop else 0.0],
                            device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
        torch.distributed.all_reduce(flag)  # sum over ranks
        stop = float(flag) > 0
    return stop


def load_student(source, config, *, device=None) -> LoadedModel:
    """The trainable student: a path/hub id (loaded, LoRA-wrapped when config.lora) or a LoadedModel.
    Seeded first so LoRA's random init is reproducible. Weights stay float32 even on CUDA (the Trainer
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


def load_weights(model, path: Path) -> None:
    """Weights of a checkpoint dir into `model` (the adapter only, for a LoRA model)."""
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


def plan(num_rows: int, config, num_processes: int = 1) -> tuple[int, int]:
    """(steps_per_epoch, total_steps). max_steps > 0 overrides the epoch count, as in HF Trainer. With
    several processes each takes every n-th micro-batch (accelerate's sharding), so an epoch is shorter."""
    micro_per_epoch = math.ceil(math.ceil(num_rows / config.batch_size) / max(num_processes, 1))
    steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum)
    total = config.max_steps or config.num_epochs * steps_per_epoch
    return steps_per_epoch, total


def memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class EpochPermutation(torch.utils.data.Sampler):
    """A fixed permutation of the rows per epoch, from seed + epoch. The Trainer calls set_epoch before
    each pass; the counter keeps it right where a wrapper (skip + shard on resume) swallows that call."""

    def __init__(self, num_rows: int, seed: int, start_epoch: int = 0):
        self.num_rows, self.seed, self.epoch = num_rows, seed, start_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.num_rows

    def __iter__(self):
        order = torch.randperm(self.num_rows, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        self.epoch += 1
        return iter(order.tolist())


class StepMeter:
    """Averages a step's loss and metrics over its micro-batches and counts its tokens; across
    processes the means are reduced, so every rank (and the hooks on rank 0) sees the same figures."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums, self.count, self.tokens, self.lr = {}, 0, 0, None

    def add(self, loss, metrics: dict, num_tokens: int) -> None:
        for name, value in {"loss": loss.detach(), **metrics}.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.count += 1
        self.tokens += int(num_tokens)

    def result(self, accelerator) -> tuple[dict, int]:
        means = {name: total / max(self.count, 1) for name, total in sorted(self.sums.items())}
        tokens = self.tokens
        if accelerator is not None and accelerator.num_processes > 1:
            values = torch.tensor(list(means.values()) + [float(tokens)], dtype=torch.float64,
                                  device=accelerator.device)
            values = accelerator.reduce(values, reduction="sum")
            n = accelerator.num_processes
            means = {name: float(v) / n for name, v in zip(means, values[:-1].tolist())}
            tokens = int(values[-1])
        return means, tokens


class RecipeTrainer(Trainer):
    """Wires batches into the recipe's pure loss; saves LoRA checkpoints merged (each is a model
    version) with the adapter beside them; adds the step history and `extra` to each checkpoint.
    On a plain or DDP model it also trims the library's fixed Python cost per micro-batch (see
    training_step), which on a small model is a good share of a step."""

    loss_is_scaled_for_ga = False  # step_loss is a per-micro-batch mean: the Trainer divides by accumulation

    def __init__(self, *args, step_loss: Callable, num_rows: int, start_epoch: int, extra=None,
                 recipe_config=None, history: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_loss, self.num_rows, self.start_epoch = step_loss, num_rows, start_epoch
        self.extra, self.recipe_config, self.history = extra, recipe_config, history
        self.meter, self._micro_of, self._num_params = StepMeter(), (-1, 0), None
        self.grad_norm, self._trainable, self._lean, self._put_in_train_mode = None, None, None, False
        # compute_loss never hands num_items_in_batch to the model, so the library need not count the
        # label tokens of every step for it.
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset=None):
        return EpochPermutation(self.num_rows, self.args.seed, self.start_epoch)

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        if self.args.device.type == "cpu" and hasattr(loader, "device"):
            loader.device = None  # the collator builds CPU tensors: no per-batch walk to "move" them there
        return loader

    def _lean_step(self) -> bool:
        """Whether training_step may take the short path: no DeepSpeed (its engine scales and steps
        itself), no context or sequence parallelism, no SageMaker MP, one device per process."""
        if self._lean is None:
            pc = getattr(self.accelerator, "parallelism_config", None)
            from transformers.trainer import is_sagemaker_mp_enabled

            self._lean = (not self.is_deepspeed_enabled and not is_sagemaker_mp_enabled() and self.args.n_gpu <= 1
                          and (pc is None or not (pc.cp_enabled or getattr(pc, "sp_enabled", False)))
                          and self.args.torch_empty_cache_steps is None)
        return self._lean

    def training_step(self, model, inputs, num_items_in_batch=None):
        # The library's training_step minus its per-micro-batch work that has nothing to do here:
        # model.train() over every module (only needed after an evaluation or a generation left the
        # model in eval mode; ml.generation restores the mode it found, and the mode is set once at the
        # start), _prepare_inputs (accelerate's dataloader has put the batch on the device, and the
        # recipes move what they use), the context-parallel, SageMaker and LOMO branches.
        if not self._lean_step():
            return super().training_step(model, inputs, num_items_in_batch)
        if not self._put_in_train_mode or not model.training:
            model.train()
            self._put_in_train_mode = True
        with self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if self.current_gradient_accumulation_steps != 1:  # step_loss is a per-micro-batch mean
            loss = loss / self.current_gradient_accumulation_steps
        self.accelerator.backward(loss)
        return loss.detach()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        step = self.state.global_step
        micro = self._micro_of[1] + 1 if self._micro_of[0] == step else 0
        self._micro_of = (step, micro)
        if micro == 0:
            self.meter.reset()
            self.meter.lr = self._get_learning_rate()
        loss, metrics = self.step_loss(model, {**inputs, "step": step, "micro": micro})
        self.meter.add(loss, metrics, inputs["num_tokens"])
        return (loss, None) if return_outputs else loss

    def floating_point_ops(self, inputs) -> int:
        # 6 x tokens x parameters, as the library estimates it, but counting the parameters once: the
        # library walks every module on every micro-batch to recount them.
        if self._num_params is None:
            self._num_params = self.accelerator.unwrap_model(self.model).num_parameters(exclude_embeddings=True)
        return 6 * int(inputs.get("num_tokens", 0)) * self._num_params

    def _clip_grad_norm(self, model):
        # torch's own clip for a plain or DDP model (its gradients are already all-reduced), over the
        # trainable parameters listed once: accelerate's DTensor-aware path costs several ms a step on
        # a small model, and walking the modules for the parameters again costs ~0.1 ms. FSDP,
        # DeepSpeed and fp16 (which must unscale first) keep the library's path. The norm is kept for
        # HooksCallback (the step's "grad_norm" metric).
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or self.args.fp16:
            self.grad_norm = super()._clip_grad_norm(model)
        else:
            if self._trainable is None:
                self._trainable = [p for p in model.parameters() if p.requires_grad]
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable, self.args.max_grad_norm)
        return self.grad_norm

    def _get_grad_norm(self, model, grad_norm=None):
        if grad_norm is None:  # max_grad_norm = 0: no clipping, and no extra pass to measure the norm
            return None
        return super()._get_grad_norm(model, grad_norm)

    def _save(self, output_dir=None, state_dict=None):
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        if state_dict is None or is_peft(model):
            save_model_dir(model, self.processing_class, Path(output_dir))
        else:  # FSDP / DeepSpeed hand over the gathered full state dict
            model.save_pretrained(output_dir, state_dict=state_dict)
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        load_weights(model or self.model, Path(resume_from_checkpoint))

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if not self.args.should_save:
            return
        path = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        torch.save({"history": self.history, "extra": self.extra.state_dict() if self.extra is not None else None},
                   path / RECIPE_STATE)
        (path / MARKER).write_text(json.dumps(
            {"method": method_of(self.recipe_config), "step": self.state.global_step,
             "total_steps": self.state.max_steps, "config": config_to_dict(self.recipe_config)}, indent=2))


class HooksCallback(TrainerCallback):
    """After each optimizer step (on_step_end, so the Trainer's own log need not run every step):
    history entry and ProgressEvent (rank 0 only), `after_step` (TAID's schedule, every rank),
    checkpoints every save_every_steps, and the cooperative stop, agreed by all ranks so they leave
    the loop at the same step and rank 0 saves a resumable checkpoint there (the Trainer saves right
    after on_step_end, in the same step)."""

    def __init__(self, trainer_ref: list, hooks: Hooks, *, save_every: int, after_step: Callable | None):
        self.trainer_ref, self.hooks, self.save_every, self.after_step = trainer_ref, hooks, save_every, after_step
        self.stopped, self.started = False, time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        trainer = self.trainer_ref[0]
        means, tokens = trainer.meter.result(trainer.accelerator)
        loss = means.pop("loss")
        if trainer.grad_norm is not None:
            means["grad_norm"] = float(trainer.grad_norm)
        if self.after_step is not None:
            self.after_step(loss)
        lr = float(trainer.meter.lr if trainer.meter.lr is not None else trainer._get_learning_rate())
        trainer.history.append({"step": state.global_step, "loss": loss, "lr": lr, **means})
        if args.report_to:  # the step's figures to the trackers' on_log (the library's own log is off then)
            trainer.log({"loss": loss, "learning_rate": lr, **means})
        if trainer.accelerator.is_main_process:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.hooks.on_progress(ProgressEvent(
                step=state.global_step, total_steps=state.max_steps, epoch=float(state.epoch or 0.0), loss=loss,
                metrics=means, tokens_per_s=tokens / elapsed, lr=lr, memory_mb=memory_mb()))
        if self.save_every and state.global_step % self.save_every == 0 and state.global_step < state.max_steps:
            control.should_save = True
        if state.global_step < state.max_steps and agreed_stop(self.hooks):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control


def training_arguments(config, output_dir: Path, total_steps: int, *, report_to=(), run_name: str = "") -> TrainingArguments:
    """Our config onto TrainingArguments: AdamW without weight decay, the warm-up as a step count,
    bf16 autocast on CUDA (weights stay float32), the library's own log every LOG_EVERY steps (the
    per-step figures reach the hooks through HooksCallback, so the library need not gather, filter
    and log the loss every step), saving driven by HooksCallback, Liger kernels when the package is
    installed and a GPU is there. With trackers in `report_to` (ml.trackers), HooksCallback logs every
    step's figures, recipe metrics included, and the library's own periodic log is off, so a tracker
    sees one value per step."""
    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir), learning_rate=config.learning_rate, weight_decay=0.0, optim="adamw_torch",
        lr_scheduler_type=SCHEDULERS[config.lr_scheduler], warmup_steps=math.ceil(config.warmup_ratio * total_steps),
        max_steps=total_steps, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, max_grad_norm=config.max_grad_norm, seed=config.seed,
        data_seed=config.seed, logging_steps=LOG_EVERY, logging_nan_inf_filter=False,
        logging_strategy="no" if report_to else "steps", **trackers.trainer_kwargs(report_to, run_name),
        save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False, label_names=[],
        activation_checkpointing=getattr(config, "gradient_checkpointing", False),
        use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        use_liger_kernel=cuda and importlib.util.find_spec("liger_kernel") is not None,
        ddp_find_unused_parameters=False,
    )


def _resumed_state(resume_from) -> tuple[int, list, dict | None]:
    """(global step, history, extra state) of a checkpoint written by RecipeTrainer."""
    path = Path(resume_from)
    if not (path / "trainer_state.json").exists():
        raise ValueError(f"{path} is not a resumable checkpoint of the library trainer (no trainer_state.json)"
                         + ("; it was written by the old home loop, which this version cannot resume"
                            if (path / "trainer_state.pt").exists() else ""))
    step = json.loads((path / "trainer_state.json").read_text())["global_step"]
    state = torch.load(path / RECIPE_STATE, weights_only=True) if (path / RECIPE_STATE).exists() else {}
    return step, list(state.get("history") or []), state.get("extra")


def run_trainer(*, loaded: LoadedModel, config, rows: list, make_batch: Callable, step_loss: Callable,
                output_dir, hooks: Hooks | None = None, resume_from=None, extra=None,
                after_step: Callable | None = None) -> TrainResult:
    """Train `loaded.model` on `rows` with RecipeTrainer. make_batch(list of rows) -> dict (with
    "num_tokens"); step_loss(model, batch) -> (loss (), metrics {name: ()}); batch also carries "step"
    and "micro" (for recipes that sample). `extra` (state_dict/load_state_dict) rides along in
    checkpoints; after_step(loss: float) runs after each optimizer step (TAID's schedule)."""
    hooks, output_dir = hooks or Hooks(), Path(output_dir)
    if not rows:
        raise ValueError("no training rows")
    steps_per_epoch, total_steps = plan(len(rows), config, world_size())
    start_step, history = 0, []
    if resume_from is not None:
        start_step, history, extra_state = _resumed_state(resume_from)
        if extra is not None and extra_state is not None:
            extra.load_state_dict(extra_state)
    if hooks.should_stop():  # cancelled before the first step: nothing new to save
        return TrainResult(Path(resume_from) if resume_from else None, start_step,
                           dict(history[-1]) if history else {}, [], True, history)
    trainer_ref = []
    callback = HooksCallback(trainer_ref, hooks, save_every=config.save_every_steps, after_step=after_step)
    trainer = RecipeTrainer(
        model=loaded.model, args=training_arguments(config, output_dir, total_steps, report_to=hooks.report_to,
                                                    run_name=hooks.run_name), train_dataset=rows,
        data_collator=make_batch, processing_class=loaded.tokenizer,
        callbacks=[callback, *tracker_callbacks(hooks.report_to)], step_loss=step_loss,
        num_rows=len(rows), start_epoch=start_step // steps_per_epoch, extra=extra, recipe_config=config,
        history=history)
    trainer_ref.append(trainer)
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict; progress goes to hooks
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    step = trainer.state.global_step
    checkpoints = sorted((p for p in output_dir.glob("checkpoint-*") if (p / MARKER).exists()),
                         key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    if callback.stopped:
        final_dir = output_dir / f"checkpoint-{step}"
    else:
        final_dir = output_dir / "final"
        trainer.save_model(str(final_dir))
    trainer.accelerator.wait_for_everyone()
    return TrainResult(final_dir, step, dict(history[-1]) if history else {}, checkpoints, callback.stopped, history)
