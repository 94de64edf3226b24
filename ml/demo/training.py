"""The short supervised fine-tuning loop that teaches the demo teacher and student their tasks when
the demo world is built: prompt (chat-rendered) + answer + eos, cross-entropy on the answer tokens
only, AdamW with a cosine schedule. Deliberately tiny and CPU-friendly; the product's own SFT recipe
lives in ml/recipes/."""
from __future__ import annotations

from typing import Callable

import torch
from transformers import get_cosine_schedule_with_warmup

from ml.demo.tasks import Task
from ml.chat import prompt_ids, response_ids

IGNORE_INDEX = -100


def sft_examples(tokenizer, tasks: list[Task]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per task; labels are IGNORE_INDEX on the prompt, so only the answer
    and its closing eos are learned."""
    examples = []
    for task in tasks:
        prompt, answer = prompt_ids(tokenizer, task.prompt), response_ids(tokenizer, task.answer)  # ml.chat's one path
        examples.append((prompt + answer, [IGNORE_INDEX] * len(prompt) + answer))
    return examples


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask, labels, each (B,T)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_sft(
    model,
    tokenizer,
    tasks: list[Task],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup_ratio: float = 0.05,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` in place for `steps` batches drawn (seeded) from `tasks`; returns the losses."""
    examples = sft_examples(tokenizer, tasks)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, int(warmup_ratio * steps)), steps)
    model.train()
    losses = []
    for step in range(steps):
        picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        batch = collate([examples[i] for i in picks], tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
