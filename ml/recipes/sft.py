"""SFT and sequence-level KD (ALGORITHMS.md §1): cross-entropy on a target response, either the
dataset's own (`target="chosen"`) or the teacher's greedy generation for each prompt
(`target="teacher"`, sequence-level KD: the teacher writes the targets once, up front, and is freed).
Token-level KD (forward/reverse KL, JSD) lives in ml/recipes/kd.py."""
from ml.config import SFTConfig
from ml.data import PreferencePair, SFTExample
from ml.generation import generate
from ml.losses.sft import sft_loss
from ml.recipes.batching import collate, encode, forward_logits
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_frozen, load_student, run_trainer


def as_sft_examples(data) -> list:
    """SFTExamples, or the chosen side of PreferencePairs."""
    return [SFTExample(row.prompt, row.chosen) if isinstance(row, PreferencePair) else row for row in data]


def teacher_targets(teacher, prompts: list, *, max_new_tokens: int, seed: int, batch_size: int) -> list:
    """Greedy teacher responses to `prompts`, as SFTExamples (sequence-level KD targets)."""
    loaded = load_frozen(teacher)
    outputs = generate(loaded.model, loaded.tokenizer, prompts, k=1, temperature=0.0, top_p=1.0,
                       max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    return [SFTExample(prompt, samples[0].text) for prompt, samples in zip(prompts, outputs)]


def train(config: SFTConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher=None,
          resume_from=None, device=None) -> TrainResult:
    """Fine-tune `student` on `data` (SFTExamples or PreferencePairs). With config.target == "teacher",
    `teacher` first generates the targets (sequence-level KD)."""
    examples = as_sft_examples(data)
    if config.target == "teacher":
        if teacher is None:
            raise ValueError("sequence-level KD (target='teacher') needs a teacher")
        examples = teacher_targets(teacher, [e.prompt for e in examples], max_new_tokens=config.max_new_tokens,
                                   seed=config.seed, batch_size=config.batch_size)
    loaded = load_student(student, config, device=device)
    tokenizer = loaded.tokenizer
    rows = [encode(tokenizer, e.prompt, e.response, config.max_length) for e in examples]

    def make_batch(batch_rows):
        batch = collate(batch_rows, tokenizer.pad_token_id)
        batch["num_tokens"] = int(batch["attention_mask"].sum())
        return batch

    def step_loss(model, batch):
        logits = forward_logits(model, batch)
        return sft_loss(logits, batch["labels"].to(logits.device))

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
