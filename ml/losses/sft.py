"""SFT and sequence-level KD (ALGORITHMS.md §1): cross-entropy on a target response, the dataset's
chosen answer or the teacher's own generation, averaged over the response tokens of the batch."""

import torch

from ml.losses.common import detached, masked_mean, response_mask, token_logps


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative log-likelihood, NLL = -(1/N) sum_{b,t: labels!=-100} log pi(labels_bt | s_bt).

    logits (B,T,V) already shifted so logits[:, t] predicts labels[:, t]; labels (B,T) with -100 on
    prompt and padding. N counts response tokens across the whole batch (not per sequence), so long
    answers weigh more, as in HF/TRL SFT. Returns (loss (), {"nll", "num_tokens"})."""
    mask = response_mask(labels)  # (B,T)
    nll = -masked_mean(token_logps(logits, labels), mask)
    return nll, detached({"nll": nll, "num_tokens": mask.sum().to(nll.dtype)})
