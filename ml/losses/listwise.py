"""Listwise preference loss for k-way rankings, ADPO's anchored softmax (ALGORITHMS.md §6):
KL(q || softmax((logps - ref_logps) / tau)) over the k candidates of a prompt, q a target distribution
from a human ranking or from teacher scores. With k=2 and one-hot q it is DPO with beta = 1/tau."""

import torch
import torch.nn.functional as F

from ml.losses.common import detached


def listwise_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    target_probs: torch.Tensor,
    *,
    tau: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss = mean_prompts KL(q || softmax(u)), u = (policy_logps - ref_logps) / tau.

    policy_logps, ref_logps (B,k) SUMS of response-token log-probs of the k candidates; target_probs
    (B,k) rows summing to 1 (zeros allowed: 0 log 0 = 0). Returns (loss (), {"kl",
    "top1_accuracy" (share of prompts whose largest u is q's most preferred candidate)})."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    anchored_scores = (policy_logps - ref_logps) / tau  # (B,k)
    model_logps = F.log_softmax(anchored_scores, dim=-1)  # (B,k)
    # kl_div takes log q_model as input and the target q as target: KL(target || model)
    per_prompt = F.kl_div(model_logps, target_probs.to(model_logps.dtype), reduction="none").sum(-1)  # (B,)
    loss = per_prompt.mean()
    top1 = (anchored_scores.argmax(-1) == target_probs.argmax(-1)).to(loss.dtype).mean()
    return loss, detached({"kl": loss, "top1_accuracy": top1})
