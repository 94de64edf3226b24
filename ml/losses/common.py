"""Shared pieces of the training objectives: response masks, masked means, per-token and per-sequence
log-probs, and a KL divergence with its argument order spelled out.

Conventions used by every loss in this package (ALGORITHMS.md, "Log-prob conventions"):
- callers pass tensors that are already shifted, so `logits[:, t]` predicts `labels[:, t]`;
- `labels == -100` (IGNORE_INDEX) marks prompt and padding positions;
- `logps(y)` is the SUM of log pi(y_t | s_t) over response tokens;
- token-level terms are the MEAN over all response tokens of the batch (not per sequence first).
"""

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def as_float(logits: torch.Tensor) -> torch.Tensor:
    """Upcast bf16/fp16 to float32 (float64 stays float64): softmax over a large vocabulary loses
    too many digits in half precision for log-prob sums and KLs to be trusted."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def response_mask(labels: torch.Tensor) -> torch.Tensor:
    """labels (B,T) -> bool (B,T), True at response tokens."""
    return labels != IGNORE_INDEX


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values (B,T) (or any shape), mask of the same shape, bool or 0/1 -> () mean of values over the
    True positions of the whole batch. An empty mask gives 0 rather than NaN, so a batch of
    prompt-only rows cannot poison a run."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits (B,T,V), labels (B,T) with -100 masked -> (B,T) log pi(labels_t | s_t), 0 where masked.

    The tensors must already be shifted (logits at t predict labels at t)."""
    mask = response_mask(labels)
    safe_labels = labels.masked_fill(~mask, 0)  # -100 is not a valid gather index
    logps = F.log_softmax(as_float(logits), dim=-1)
    picked_logps = logps.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)  # (B,T)
    return picked_logps.masked_fill(~mask, 0.0)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits (B,T,V), labels (B,T) with -100 masked -> (B,) SUM of response-token log-probs."""
    return token_logps(logits, labels).sum(-1)


def token_kl(p_logps: torch.Tensor, q_logps: torch.Tensor) -> torch.Tensor:
    """p_logps, q_logps (...,V) log-distributions -> (...) KL(p || q) = sum_v p (log p - log q).

    F.kl_div takes the math in reverse: input is log q (the approximating side), target is p."""
    return F.kl_div(q_logps, p_logps, reduction="none", log_target=True).sum(-1)


def detached(metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Metrics are for logging only: cut them from the graph so they hold no activations alive."""
    return {name: value.detach() for name, value in metrics.items()}
