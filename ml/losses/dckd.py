"""DCKD, dual-constrained knowledge distillation (Gao et al., ICLR 2025, arXiv 2502.17927, the
L_DCKD objective; ALGORITHMS.md §4): NLL on the chosen response plus token-level forward KL from the
DPO teacher to the student on both the chosen and the rejected response, the teacher stored as top-K
probabilities plus one "rest" bucket."""

import torch

from ml.losses.common import as_float, detached, masked_mean, response_mask
from ml.losses.sft import sft_loss

PROB_FLOOR = 1e-8  # clamp before logs: the rest bucket of a peaked distribution can round to <= 0


def binned_forward_kl(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_probs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean over response tokens of KL(p_T || p_S) on K+1 bins: the teacher's top-K ids and a rest bin.

    student_logits (B,T,V); teacher_topk_ids (B,T,K) int; teacher_topk_probs (B,T,K) precomputed at
    this same temperature; mask (B,T) True at response tokens (ids there may be anything elsewhere).
    Student bins: p_S at the K ids and 1 - their sum; teacher rest = 1 - sum of its top-K. Both clamped
    at 1e-8. temperature divides the student logits only. Returns () scalar."""
    student_probs = torch.softmax(as_float(student_logits) / temperature, dim=-1)  # (B,T,V)
    student_topk_probs = student_probs.gather(-1, teacher_topk_ids)  # (B,T,K)
    teacher_topk_probs = teacher_topk_probs.to(student_topk_probs.dtype)
    student_bins = torch.cat([student_topk_probs, 1 - student_topk_probs.sum(-1, keepdim=True)], -1)  # (B,T,K+1)
    teacher_bins = torch.cat([teacher_topk_probs, 1 - teacher_topk_probs.sum(-1, keepdim=True)], -1)  # (B,T,K+1)
    student_bins = student_bins.clamp(min=PROB_FLOOR)
    teacher_bins = teacher_bins.clamp(min=PROB_FLOOR)
    per_token = (teacher_bins * (teacher_bins.log() - student_bins.log())).sum(-1)  # (B,T)
    return masked_mean(per_token, mask)


def dckd_loss(
    chosen_logits: torch.Tensor,
    chosen_labels: torch.Tensor,
    chosen_topk_ids: torch.Tensor,
    chosen_topk_probs: torch.Tensor,
    rejected_logits: torch.Tensor,
    rejected_labels: torch.Tensor,
    rejected_topk_ids: torch.Tensor,
    rejected_topk_probs: torch.Tensor,
    *,
    alpha_w: float = 0.1,
    alpha_l: float = 0.1,
    nll_weight: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = nll_weight NLL(y_w) + alpha_w KL_tok(pi_dpo || pi_theta | x, y_w) + alpha_l KL_tok(... | x, y_l).

    *_logits (B,T,V) student, teacher-forced on the dataset's own responses and already shifted;
    *_labels (B,T) with -100 on prompt/padding; *_topk_ids / *_topk_probs (B,T,K) the DPO teacher's
    precomputed top-K at each position. Each KL is a mean over that response's tokens in the batch.
    Returns (loss (), {"nll", "kl/chosen", "kl/rejected"})."""
    nll, _ = sft_loss(chosen_logits, chosen_labels)
    chosen_mask, rejected_mask = response_mask(chosen_labels), response_mask(rejected_labels)  # (B,T)
    kl_chosen = binned_forward_kl(chosen_logits, chosen_topk_ids, chosen_topk_probs, chosen_mask, temperature=temperature)
    kl_rejected = binned_forward_kl(
        rejected_logits, rejected_topk_ids, rejected_topk_probs, rejected_mask, temperature=temperature
    )
    loss = nll_weight * nll + alpha_w * kl_chosen + alpha_l * kl_rejected
    return loss, detached({"nll": nll, "kl/chosen": kl_chosen, "kl/rejected": kl_rejected})
