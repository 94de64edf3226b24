"""ULD recipe (ALGORITHMS.md §8): token-level distillation between a teacher and a student with
different tokenizers. Each response is tokenized by both (ml.chat's response ids), aligned by
character spans (ml/alignment.py), and the student learns NLL on its own tokens plus the sorted-
probability L1 (ml.losses.uld) per aligned group, the teacher's distribution taken at the step that
predicts the group's first teacher token. The teacher stays loaded and frozen and runs on its own
token ids of the same prompt and response; top_k > 0 keeps only its K largest probabilities (what
an endpoint would return). With rejected_weight > 0 a second ULD term on the rejected response makes
this DCKD's cross-tokenizer mode (the spec's KL needs one vocabulary; ULD stands in for it). With
the same tokenizer on both sides every group is one token each and the recipe still runs."""
from dataclasses import dataclass

import torch

from ml.alignment import align_text
from ml.chat import end_of_turn_id
from ml.config import ULDConfig
from ml.data import PreferencePair
from ml.losses.uld import sorted_teacher_probs, uld_loss
from ml.recipes.batching import Encoded, collate, encode, forward_logits
from ml.recipes.hooks import Hooks, TrainResult
from ml.recipes.trainer import load_frozen, load_student, run_trainer


@dataclass(frozen=True)
class AlignedRow:
    student: Encoded
    teacher: Encoded
    student_first: list  # per kept group: its first student token, as an index into the response ids
    teacher_first: list
    one_to_one_chars: int
    num_chars: int


def aligned_row(teacher_tokenizer, student_tokenizer, prompt, response: str, max_length: int) -> AlignedRow:
    """Both tokenizations of (prompt, response) and the groups that survive the max_length cut."""
    student, teacher = (encode(tok, prompt, response, max_length) for tok in (student_tokenizer, teacher_tokenizer))
    closed = end_of_turn_id(teacher_tokenizer) is not None and end_of_turn_id(student_tokenizer) is not None
    al = align_text(teacher_tokenizer, student_tokenizer, response, end_token=closed)
    kept = [(t, s) for t, s in zip(al.teacher_first, al.student_first)
            if t < len(teacher.response_ids) and s < len(student.response_ids)]
    return AlignedRow(student, teacher, [s for _, s in kept], [t for t, _ in kept], al.one_to_one_chars, al.num_chars)


def group_positions(rows: list, side: str, response_start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (B,G) in the shifted frame, mask (B,G)) of each row's groups on `side`."""
    firsts = [getattr(r, f"{side}_first") for r in rows]
    width = max(1, max(len(f) for f in firsts))
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, first in enumerate(firsts):
        positions[i, : len(first)] = int(response_start[i]) + torch.tensor(first, dtype=torch.long)
        mask[i, : len(first)] = True
    return positions, mask


def train(config: ULDConfig, data, output_dir, hooks: Hooks | None = None, *, student, teacher,
          resume_from=None, device=None) -> TrainResult:
    """ULD from `teacher` into `student` on SFTExamples or PreferencePairs (their chosen side; the
    rejected side too when config.rejected_weight > 0, which needs PreferencePairs)."""
    loaded = load_student(student, config, device=device)
    frozen = load_frozen(teacher, device=device)
    s_tok, t_tok = loaded.tokenizer, frozen.tokenizer
    sides = ("chosen", "rejected") if config.rejected_weight > 0 else ("chosen",)
    if "rejected" in sides and not all(isinstance(row, PreferencePair) for row in data):
        raise ValueError("rejected_weight > 0 (DCKD's cross-tokenizer mode) needs preference pairs")
    rows = [{side: aligned_row(t_tok, s_tok, row.prompt,
                               getattr(row, side) if isinstance(row, PreferencePair) else row.response,
                               config.max_length) for side in sides} for row in data]

    def make_batch(batch_rows):
        batch = {"num_tokens": 0}
        for side in sides:
            aligned = [r[side] for r in batch_rows]
            s = collate([a.student for a in aligned], s_tok.pad_token_id)
            t = collate([a.teacher for a in aligned], t_tok.pad_token_id)
            s["group_positions"], s["group_mask"] = group_positions(aligned, "student", s["response_start"])
            t["group_positions"], _ = group_positions(aligned, "teacher", t["response_start"])
            batch[side] = {"student": s, "teacher": t}
            batch["num_tokens"] += int(s["attention_mask"].sum())
        chosen = [r["chosen"] for r in batch_rows]
        batch["one_to_one"] = sum(a.one_to_one_chars for a in chosen) / max(1, sum(a.num_chars for a in chosen))
        return batch

    def side_loss(model, side, weight, nll_weight):
        s, t = side["student"], side["teacher"]
        student_logits = forward_logits(model, s)  # (B,T,V_S)
        dev = student_logits.device
        with torch.no_grad():
            teacher_logits = forward_logits(frozen.model, t)  # (B,T',V_T)
            positions = t["group_positions"].to(teacher_logits.device)  # (B,G)
            index = positions.unsqueeze(-1).expand(-1, -1, teacher_logits.shape[-1])  # (B,G,V_T)
            teacher_sorted = sorted_teacher_probs(teacher_logits.gather(1, index), top_k=config.top_k).to(dev)
        return uld_loss(student_logits, s["labels"].to(dev), s["group_positions"].to(dev), teacher_sorted,
                        s["group_mask"].to(dev), weight=weight, nll_weight=nll_weight)

    def step_loss(model, batch):
        loss, metrics = side_loss(model, batch["chosen"], config.weight, config.nll_weight)
        metrics = {"nll": metrics["nll"], "uld/chosen": metrics["uld"],
                   "one_to_one_share": torch.tensor(batch["one_to_one"])}
        if "rejected" in batch:
            rejected_loss, rejected = side_loss(model, batch["rejected"], config.rejected_weight, 0.0)
            loss, metrics["uld/rejected"] = loss + rejected_loss, rejected["uld"]
        return loss, metrics

    return run_trainer(loaded=loaded, config=config, rows=rows, make_batch=make_batch, step_loss=step_loss,
                       output_dir=output_dir, hooks=hooks, resume_from=resume_from)
