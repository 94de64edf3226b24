"""REDI, reinforcement distillation from positive and negative traces (Xu et al., 2025,
arXiv 2505.24850; ALGORITHMS.md §6): a reference-free objective that raises the length-normalized
log-likelihood of correct teacher traces and lowers, with a smaller weight, that of incorrect ones.
Run it after SFT on the positives."""

import torch

from ml.losses.common import detached, response_mask, sequence_logps


def redi_loss(
    pos_logits: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_labels: torch.Tensor,
    *,
    alpha: float = 0.8,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_pairs [ -logps(y+)/|y+| + alpha logps(y-)/|y-| ].

    pos_logits, neg_logits (B,T,V) already shifted; pos_labels, neg_labels (B,T) with -100 on prompt
    and padding. logps is the SUM over response tokens and |y| that response's token count, so each
    trace counts once whatever its length. alpha < 1 keeps the push-down weaker than the pull-up,
    which the paper needs for stability. Returns (loss (), {"logps/positive", "logps/negative"}),
    both length-normalized batch means."""
    pos_lengths = response_mask(pos_labels).sum(-1).clamp(min=1)  # (B,)
    neg_lengths = response_mask(neg_labels).sum(-1).clamp(min=1)  # (B,)
    pos_mean_logps = sequence_logps(pos_logits, pos_labels) / pos_lengths  # (B,)
    neg_mean_logps = sequence_logps(neg_logits, neg_labels) / neg_lengths  # (B,)
    loss = (-pos_mean_logps + alpha * neg_mean_logps).mean()
    return loss, detached({"logps/positive": pos_mean_logps.mean(), "logps/negative": neg_mean_logps.mean()})
