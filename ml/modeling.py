"""Loading models the one way every method uses: device and dtype choice, `load_model` for a local
directory or a hub id (safetensors only, never remote code; optional LoRA through peft), the
shared-tokenizer check that teacher/student mixing methods need, and `render_prompt`, the single
place a prompt becomes model text through the tokenizer's chat template."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase


class TokenizerMismatchError(ValueError):
    """Teacher and student tokenizers differ where a method needs them identical."""


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (peft `LoraConfig`); `target_modules` names Llama's projections."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    source: str
    revision: str | None
    num_parameters: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (halves memory, native on Ampere+); fp32 on CPU, where bf16 matmuls are slow."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_tokenizer(source: str, *, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, left-padded (generation appends on the right) with a pad token."""
    tokenizer = AutoTokenizer.from_pretrained(str(source), revision=revision, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    source: str,
    *,
    revision: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    lora: LoraSpec | None = None,
    trainable: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a local directory or a hub id (+ revision).

    Frozen and in eval mode unless `trainable`; with `lora`, only the adapter weights train."""
    device = torch.device(device) if device is not None else pick_device()
    dtype = dtype or pick_dtype(device)
    tokenizer = load_tokenizer(source, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(
        str(source), revision=revision, dtype=dtype, use_safetensors=True, trust_remote_code=False
    )
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    if trainable:
        model.train()
        if lora is None:
            model.requires_grad_(True)
    else:
        model.eval()
        model.requires_grad_(False)
    num_parameters = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, str(source), revision, num_parameters, device)


def check_same_tokenizer(tok_a: PreTrainedTokenizerBase, tok_b: PreTrainedTokenizerBase, *, method: str) -> None:
    """Raise TokenizerMismatchError unless both tokenizers have the same vocabulary (token -> id)
    and the same bos/eos/unk tokens; pad is not compared (loading may default it to eos)."""
    problems = []
    vocab_a, vocab_b = tok_a.get_vocab(), tok_b.get_vocab()
    if vocab_a != vocab_b:
        differing = sorted(set(vocab_a.items()) ^ set(vocab_b.items()))
        examples = ", ".join(f"{token!r}->{idx}" for token, idx in differing[:5])
        problems.append(
            f"vocabularies differ ({len(vocab_a)} vs {len(vocab_b)} tokens; "
            f"{len(differing)} token/id entries not shared, e.g. {examples})"
        )
    for name in ("bos_token", "eos_token", "unk_token"):
        a, b = getattr(tok_a, name), getattr(tok_b, name)
        if a != b:
            problems.append(f"{name} differs ({a!r} vs {b!r})")
    if problems:
        raise TokenizerMismatchError(
            f"{method} compares teacher and student token distributions, so both models must share "
            f"one tokenizer: " + "; ".join(problems) + "."
        )


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | list[dict]) -> str:
    """Model text for a prompt: the chat template applied to one user message (plain text) or to a
    list of chat messages, ending with the assistant's turn opener. A tokenizer without a chat
    template (a base model) gets a plain-text prompt unchanged."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if tokenizer.chat_template is None:
        if isinstance(prompt, str):
            return prompt
        raise ValueError("chat messages need a tokenizer with a chat_template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
