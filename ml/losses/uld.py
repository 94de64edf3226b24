"""ULD, the Universal Logit Distillation loss (Boizard et al. 2024, arXiv 2402.12030; ALGORITHMS.md §8):
token-level distillation between a teacher and a student that do not share a vocabulary. Per aligned
group (ml/alignment.py) both next-token distributions are sorted in decreasing order and compared
by the L1 distance of the sorted vectors, the closed form of the paper's Wasserstein distance: it
matches the shape of the distributions, not the tokens they name.

TRL 1.16 has this only inside trl.experimental.gold (ULDLoss, an nn.Module bound to a GOLDConfig that
also merges split-token probabilities); the two functions here are the spec's form, written out."""

import torch

from ml.losses.common import as_float, detached, masked_mean
from ml.losses.sft import sft_loss


def sorted_teacher_probs(teacher_logits: torch.Tensor, *, top_k: int = 0, temperature: float = 1.0) -> torch.Tensor:
    """teacher_logits (...,V_T) -> (...,K) probabilities sorted in decreasing order; top_k=0 keeps all
    V_T (the full vocabulary of an in-worker teacher), top_k > 0 the K an endpoint would return."""
    probs = torch.softmax(as_float(teacher_logits) / temperature, dim=-1)
    k = probs.shape[-1] if top_k <= 0 else min(top_k, probs.shape[-1])
    return probs.topk(k, dim=-1).values


def uld_distance(student_probs: torch.Tensor, teacher_sorted_probs: torch.Tensor) -> torch.Tensor:
    """ULD_g = sum_j |p_T^(j) - p_S^(j)| over the top K of each side sorted in decreasing order.

    student_probs (...,V_S) a full (unsorted) student distribution; teacher_sorted_probs (...,K) the
    teacher's K largest probabilities, sorted decreasing (K = what the teacher side has). The student
    keeps its K largest; the shorter side is zero-padded; nothing is renormalised. Returns (...)."""
    k = teacher_sorted_probs.shape[-1]
    student_sorted = student_probs.topk(min(k, student_probs.shape[-1]), dim=-1).values  # (...,min(K,V_S))
    if student_sorted.shape[-1] < k:
        student_sorted = torch.nn.functional.pad(student_sorted, (0, k - student_sorted.shape[-1]))
    return (teacher_sorted_probs.to(student_sorted.dtype) - student_sorted).abs().sum(-1)


def uld_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    student_positions: torch.Tensor,
    teacher_sorted_probs: torch.Tensor,
    group_mask: torch.Tensor,
    *,
    weight: float = 1.0,
    nll_weight: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = nll_weight NLL_student(y) + weight mean_g ULD_g (ALGORITHMS.md §8, lambda = weight).

    student_logits (B,T,V_S) already shifted; labels (B,T) with -100 off the response; student_positions
    (B,G) long, the shifted position predicting each group's first student token; teacher_sorted_probs
    (B,G,K) from sorted_teacher_probs at the step predicting the group's first teacher token;
    group_mask (B,G) True at real groups (the mean runs over them, batch-wide). Student probabilities
    at temperature (T = 1 in the spec). Returns (loss (), {"nll", "uld", "groups"})."""
    nll, _ = sft_loss(student_logits, labels)
    index = student_positions.clamp(min=0).unsqueeze(-1).expand(-1, -1, student_logits.shape[-1])  # (B,G,V_S)
    group_logits = student_logits.gather(1, index)  # (B,G,V_S)
    student_probs = torch.softmax(as_float(group_logits) / temperature, dim=-1)
    per_group = uld_distance(student_probs, teacher_sorted_probs)  # (B,G)
    uld = masked_mean(per_group, group_mask)
    loss = nll_weight * nll + weight * uld
    return loss, detached({"nll": nll, "uld": uld, "groups": group_mask.sum().to(uld.dtype)})
