"""TAID, temporally adaptive interpolated distillation (Shing et al., ICLR 2025, arXiv 2501.16937;
ALGORITHMS.md §6): the student is trained toward a moving target that interpolates, in logit space,
between its own (detached) logits and the teacher's, with the interpolation t pushed from t_start to 1
by a schedule that speeds up while the loss keeps falling."""

import math

import torch

from ml.losses.common import as_float, detached, masked_mean


def taid_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    t: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of the student to p_t = softmax((1-t) stopgrad(z_S) + t z_T), mean over response
    tokens: -(1/N) sum_{b,t in mask} sum_v p_t(v) log p_S(v).

    student_logits, teacher_logits (B,T,V) over one shared vocabulary; mask (B,T) True at response
    tokens; t in [0, 1] from TaidSchedule. Only the log p_S leg carries gradient: the student's share
    of the target is detached so the target stays a target. Returns (loss (), {"ce", "t"})."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ: TAID needs one shared tokenizer"
        )
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"TAID t must lie in [0, 1], got {t}")
    student_logits = as_float(student_logits)
    target_logits = (1 - t) * student_logits.detach() + t * as_float(teacher_logits)  # (B,T,V)
    target_probs = torch.softmax(target_logits, dim=-1)  # (B,T,V)
    student_logps = torch.log_softmax(student_logits, dim=-1)  # (B,T,V)
    loss = masked_mean(-(target_probs * student_logps).sum(-1), mask)
    return loss, detached({"ce": loss, "t": torch.tensor(float(t), dtype=loss.dtype)})


class TaidSchedule:
    """The adaptive t of TAID: after each step with loss L_n,
    m <- beta m + (1-beta) (L_{n-1} - L_n) / L_{n-1};  t <- min(1, max(t_linear, t + alpha sigmoid(m) (1-t))),
    t_linear = t_start + (1 - t_start) step / total_steps. The first update only records L (there is no
    previous loss to compare with), as in the authors' code. state_dict()/load_state_dict() let a
    resumed run pick up the same t."""

    def __init__(self, total_steps: int, *, t_start: float = 0.4, alpha: float = 5e-4, beta: float = 0.99):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0.0 <= t_start < 1.0:
            raise ValueError(f"t_start must lie in [0, 1), got {t_start}")
        self.total_steps, self.t_start, self.alpha, self.beta = total_steps, t_start, alpha, beta
        self.t, self.step, self.momentum, self.prev_loss = t_start, 0, 0.0, None

    def update(self, loss: float) -> float:
        """Record one optimizer step's loss; return the t for the next step."""
        loss = float(loss)
        self.step += 1
        if self.prev_loss is None:
            self.prev_loss = loss
            return self.t
        relative_decrease = (self.prev_loss - loss) / (self.prev_loss + 1e-15)
        self.momentum = self.beta * self.momentum + (1 - self.beta) * relative_decrease
        t_linear = self.t_start + (1 - self.t_start) * min(1.0, self.step / self.total_steps)
        adaptive_t = self.t + self.alpha * (1 / (1 + math.exp(-self.momentum))) * (1 - self.t)
        self.t = min(1.0, max(t_linear, adaptive_t))
        self.prev_loss = loss
        return self.t

    def state_dict(self) -> dict[str, float | int | None]:
        return {"t": self.t, "step": self.step, "momentum": self.momentum, "prev_loss": self.prev_loss}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.t, self.step = float(state["t"]), int(state["step"])
        self.momentum, self.prev_loss = float(state["momentum"]), state["prev_loss"]
