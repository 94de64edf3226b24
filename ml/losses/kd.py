"""Token-level knowledge distillation (ALGORITHMS.md §2): forward KL, reverse KL and the generalized
Jensen-Shannon divergence of GKD (Agarwal et al., 2024, Eq. 1) between teacher and student
next-token distributions, averaged over response tokens. The on-policy fraction lambda is a recipe
concern (who sampled the responses), not part of the loss."""

import math

import torch

from ml.losses.common import as_float, detached, masked_mean, token_kl

KD_KINDS = ("forward", "reverse", "jsd")


def generalized_jsd(student_logps: torch.Tensor, teacher_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """student_logps, teacher_logps (...,V) -> (...) JSD(beta) = beta KL(p_T||m) + (1-beta) KL(p_S||m),
    m = (1-beta) p_S + beta p_T, log m taken with logsumexp (never the log of a sum).

    JSD(beta) itself vanishes at both ends; GKD defines the endpoints as the divergences it tends to
    after rescaling (JSD/beta -> KL(p_T||p_S) as beta->0, JSD/(1-beta) -> KL(p_S||p_T) as beta->1),
    so beta=0 returns forward KL and beta=1 reverse KL, as TRL's GKD trainer does."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"JSD beta must lie in [0, 1], got {beta}")
    if beta == 0.0:
        return token_kl(teacher_logps, student_logps)
    if beta == 1.0:
        return token_kl(student_logps, teacher_logps)
    mixture_logps = torch.logsumexp(
        torch.stack([student_logps + math.log1p(-beta), teacher_logps + math.log(beta)]), dim=0
    )  # (...,V)
    return beta * token_kl(teacher_logps, mixture_logps) + (1 - beta) * token_kl(student_logps, mixture_logps)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str = "forward",
    beta: float = 0.5,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Token-level KD: mean over response tokens of D(p_T, p_S), p = softmax(logits / temperature).

    student_logits, teacher_logits (B,T,V) over one shared vocabulary (compute the teacher's under
    torch.no_grad(); it is used as given); mask (B,T) True at response tokens.
    kind: "forward" KL(p_T||p_S) (mode-covering), "reverse" KL(p_S||p_T) (mode-seeking), or "jsd"
    (generalized JSD with mixture weight beta on the teacher). No tau^2 factor is applied.
    Returns (loss (), {"divergence", "num_tokens"})."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ: token-level KD needs one shared tokenizer"
        )
    if kind not in KD_KINDS:
        raise ValueError(f"kind must be one of {KD_KINDS}, got {kind!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    student_logps = torch.log_softmax(as_float(student_logits) / temperature, dim=-1)  # (B,T,V)
    teacher_logps = torch.log_softmax(as_float(teacher_logits) / temperature, dim=-1)  # (B,T,V)
    if kind == "forward":
        per_token = token_kl(teacher_logps, student_logps)  # (B,T)
    elif kind == "reverse":
        per_token = token_kl(student_logps, teacher_logps)
    else:
        per_token = generalized_jsd(student_logps, teacher_logps, beta)
    loss = masked_mean(per_token, mask)
    return loss, detached({"divergence": loss, "num_tokens": mask.sum().to(loss.dtype)})
