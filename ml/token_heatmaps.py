"""Per-token teacher signals over a given answer, for the side-by-side heatmap and the loop's
disagreement order: the teacher's log-prob of each token, KL(teacher || student) at each state, and
ADPA's advantage log pi_dpo - log pi_sft at the token taken (ALGORITHMS.md §5)."""
import torch

from ml.judges import response_batch
from ml.losses.common import IGNORE_INDEX, token_kl


def _logps(model, input_ids, attention_mask):
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits[:, :-1]
    return torch.log_softmax(logits.float(), dim=-1).cpu()  # (B,T-1,V)


def same_vocab(a, b) -> bool:
    return a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


@torch.inference_mode()
def token_signals(teacher, student, prompts: list, responses: list, *, dpo=None, sft=None, batch_size: int = 8):
    """Per answer, teacher-forced on the answer's tokens (+eos): tokens (decoded one by one),
    teacher_logp = log pi_T(y_t | s_t), kl = KL(pi_T || pi_S) at s_t (same vocabulary only) and
    advantage = log pi_dpo(y_t | s_t) - log pi_sft(y_t | s_t) (ADPA's A at the token taken; only with
    both teacher stages). Also `mean_kl`, the answer's teacher-student disagreement."""
    tokenizer = teacher.tokenizer
    with_kl = student is not None and same_vocab(teacher, student)
    with_advantage = dpo is not None and sft is not None and same_vocab(teacher, dpo) and same_vocab(teacher, sft)
    rows = []
    for start in range(0, len(prompts), batch_size):
        input_ids, attention_mask, labels = response_batch(tokenizer, prompts[start:start + batch_size],
                                                           responses[start:start + batch_size])
        targets = labels[:, 1:]  # (B,T-1): logits at t predict the token at t+1
        mask = targets != IGNORE_INDEX
        index = targets.clamp(min=0).unsqueeze(-1)
        teacher_logps = _logps(teacher.model, input_ids, attention_mask)  # (B,T-1,V)
        picked = teacher_logps.gather(-1, index).squeeze(-1)  # (B,T-1)
        kl = token_kl(teacher_logps, _logps(student.model, input_ids, attention_mask)) if with_kl else None
        advantage = None
        if with_advantage:
            advantage = (_logps(dpo.model, input_ids, attention_mask).gather(-1, index)
                         - _logps(sft.model, input_ids, attention_mask).gather(-1, index)).squeeze(-1)
        for i in range(len(targets)):
            keep = mask[i]
            row = {"tokens": [tokenizer.decode([t]) for t in targets[i][keep].tolist()],
                   "teacher_logp": _rounded(picked[i][keep])}
            row["kl"] = _rounded(kl[i][keep]) if kl is not None else None
            row["advantage"] = _rounded(advantage[i][keep]) if advantage is not None else None
            row["mean_kl"] = sum(row["kl"]) / max(len(row["kl"]), 1) if row["kl"] is not None else None
            rows.append(row)
    return rows


def _rounded(values: torch.Tensor) -> list:
    return [round(float(v), 4) for v in values]
