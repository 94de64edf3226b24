"""DPO (Rafailov et al., 2023, Eq. 7; ALGORITHMS.md §3) on precomputed sequence log-probs, with the
reward metrics named exactly as TRL's DPOTrainer logs them so charts read the same either way.
With pi_ref = the teacher this is the preference-distillation stage of LLaVA-MoD."""

import torch
import torch.nn.functional as F

from ml.losses.common import detached


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss = mean_pairs -log sigmoid(beta * delta),
    delta = [logps_pi(y_w) - logps_ref(y_w)] - [logps_pi(y_l) - logps_ref(y_l)].

    All inputs (B,): SUMS of response-token log-probs (common.sequence_logps). Metrics are batch means:
    rewards/chosen = beta (logps_pi - logps_ref)(y_w), rewards/rejected, rewards/margins,
    rewards/accuracies (share of pairs with margin > 0), logps/chosen, logps/rejected (policy)."""
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))  # (B,)
    chosen_rewards = beta * chosen_logratios  # (B,)
    rejected_rewards = beta * rejected_logratios  # (B,)
    margins = chosen_rewards - rejected_rewards  # (B,)
    return losses.mean(), detached(
        {
            "rewards/chosen": chosen_rewards.mean(),
            "rewards/rejected": rejected_rewards.mean(),
            "rewards/margins": margins.mean(),
            "rewards/accuracies": (margins > 0).to(margins.dtype).mean(),
            "logps/chosen": policy_chosen_logps.mean(),
            "logps/rejected": policy_rejected_logps.mean(),
        }
    )
