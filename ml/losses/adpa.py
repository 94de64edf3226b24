"""ADPA, advantage-guided distillation for preference alignment (Gao et al., ICLR 2025,
arXiv 2502.17927, the L_ADPA objective; ALGORITHMS.md §5): NLL on the chosen response minus the
student's expected teacher advantage A = log pi_dpo - log pi_sft over the DPO teacher's top-K tokens,
at states taken from the student's own responses. Advantages are precomputed once, offline."""

import math

import torch

from ml.losses.common import as_float, detached, masked_mean
from ml.losses.sft import sft_loss

ADVANTAGE_CLIPS = ("released", "none")
SFT_PROB_FLOOR = 1e-7  # default of ADPAConfig.sft_floor (ALGORITHMS.md §5)


def adpa_advantages(
    dpo_topk_ids: torch.Tensor,
    dpo_topk_logprobs: torch.Tensor,
    sft_topk_ids: torch.Tensor,
    sft_topk_logprobs: torch.Tensor,
    *,
    floor: float = SFT_PROB_FLOOR,
) -> torch.Tensor:
    """A(s_t, v) = log pi_dpo(v|s_t) - log pi_sft(v|s_t) for v in pi_dpo's top-K: (B,T,K).

    dpo_topk_ids, dpo_topk_logprobs (B,T,K); sft_topk_ids, sft_topk_logprobs (B,T,K') natural-log
    probs at the same states. A token of pi_dpo's top-K missing from pi_sft's top-K' takes, for
    pi_sft, the smallest probability pi_sft has in its OWN top-K'. The released code used pi_dpo's
    smallest instead, which inflates A for exactly those tokens. Every probability on both sides
    (pi_dpo's, the matched pi_sft ones and that fill) is floored at `floor` (ADPAConfig.sft_floor)
    before the log, so one near-zero probability cannot blow A up."""
    log_floor = math.log(floor)
    dpo_logprobs = dpo_topk_logprobs.clamp(min=log_floor)  # (B,T,K)
    matches = dpo_topk_ids.unsqueeze(-1) == sft_topk_ids.unsqueeze(-2)  # (B,T,K,K')
    sft_lp = sft_topk_logprobs.to(dpo_logprobs.dtype).clamp(min=log_floor).unsqueeze(-2)  # (B,T,1,K')
    matched_sft_logprobs = sft_lp.masked_fill(~matches, -math.inf).amax(-1)  # (B,T,K), -inf if missing
    sft_fill = sft_lp.amin(-1)  # (B,T,1): pi_sft's own smallest top-K' probability, floored
    sft_logprobs = torch.where(matches.any(-1), matched_sft_logprobs, sft_fill)
    return dpo_logprobs - sft_logprobs


def clip_advantages(advantages: torch.Tensor, mode: str) -> torch.Tensor:
    """advantages (...) -> (...). "released": clamp into [0, 1] (negative advantages contribute
    nothing, positive ones saturate at 1), as the released code effectively does; "none": raw A,
    unbounded, so it can push mass off down-weighted tokens without limit."""
    if mode == "released":
        return advantages.clamp(0.0, 1.0)
    if mode == "none":
        return advantages
    raise ValueError(f"advantage_clip must be one of {ADVANTAGE_CLIPS}, got {mode!r}")


def adpa_loss(
    chosen_logits: torch.Tensor,
    chosen_labels: torch.Tensor,
    student_resp_logits: torch.Tensor,
    student_resp_mask: torch.Tensor,
    topk_ids: torch.Tensor,
    advantages: torch.Tensor,
    *,
    weight: float = 1.6,
    nll_weight: float = 1.0,
    advantage_clip: str = "released",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = nll_weight NLL(y_w) - weight mean_t sum_{v in top-K} pi_theta(v | s_t) clip(A(s_t, v)).

    chosen_logits (B,T,V), chosen_labels (B,T) with -100: the dataset's chosen response, NLL only.
    student_resp_logits (B,T',V) the student teacher-forced on its own pre-generated response,
    shifted so position t is the state s_t; student_resp_mask (B,T') True at those response states;
    topk_ids, advantages (B,T',K) the DPO teacher's top-K and precomputed A (adpa_advantages).
    The mean over t runs over all masked states of the batch. Returns (loss (), {"nll",
    "advantage/expected" (the subtracted term before weight), "advantage/raw_mean",
    "advantage/positive_share"})."""
    nll, _ = sft_loss(chosen_logits, chosen_labels)
    student_probs = torch.softmax(as_float(student_resp_logits), dim=-1)  # (B,T',V)
    student_topk_probs = student_probs.gather(-1, topk_ids)  # (B,T',K)
    clipped = clip_advantages(advantages.to(student_topk_probs.dtype), advantage_clip)  # (B,T',K)
    expected_advantage = masked_mean((student_topk_probs * clipped).sum(-1), student_resp_mask)
    loss = nll_weight * nll - weight * expected_advantage
    state_mask = student_resp_mask.unsqueeze(-1).expand_as(advantages)  # (B,T',K)
    raw_mean = masked_mean(advantages.to(loss.dtype), state_mask)
    positive_share = masked_mean((advantages > 0).to(loss.dtype), state_mask)
    return loss, detached(
        {
            "nll": nll,
            "advantage/expected": expected_advantage,
            "advantage/raw_mean": raw_mean,
            "advantage/positive_share": positive_share,
        }
    )
