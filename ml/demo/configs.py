"""Llama configurations of the demo world's models (teacher, student, and the tiny pair the tests
use), and helpers to build a seeded random-init model and save it with its tokenizer as a model
directory that `ml.modeling.load_model` (and `AutoModelForCausalLM`) reads back."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

# name -> (hidden, intermediate, layers, heads); the teacher has ~9x the student's parameters. The
# student has two layers (a one-layer student of 18k parameters learnt the chosen answers and little
# else, so no distillation term could show).
SIZES = {
    "teacher": (128, 256, 3, 4),
    "student": (48, 96, 2, 4),
    "tiny-teacher": (16, 32, 2, 2),
    "tiny-student": (8, 16, 1, 1),
}


def llama_config(tokenizer: PreTrainedTokenizerBase, size: str, *, max_positions: int = 256) -> LlamaConfig:
    """A small Llama config sized by `SIZES[size]`, with the tokenizer's vocabulary and special ids."""
    hidden, intermediate, layers, heads = SIZES[size]
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(config: LlamaConfig, *, seed: int) -> LlamaForCausalLM:
    """A random-init model; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    return model


def save_model_dir(model, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save weights (safetensors), config and tokenizer side by side in one directory."""
    path = Path(path)
    model.save_pretrained(path)  # transformers 5 always writes safetensors
    tokenizer.save_pretrained(path)
    return path
