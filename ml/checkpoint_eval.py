"""The light evaluation a training run gives each of its checkpoints, and the teacher-hacking view it
feeds ("On Teacher Hacking in Language Model Distillation", Tiapkin et al. 2025): how close the
student has grown to the teacher (the proxy) and how good it is by a ground truth the teacher does
not define (the oracle, or a judge's win rate against the teacher).

Given a fixed held-out sample (prompt, the teacher's own greedy answer, an optional oracle scorer),
one call measures a student checkpoint by:
- oracle accuracy of its greedy answers, with a Wilson interval (where an oracle exists);
- KL(teacher ‖ student), mean per token, teacher-forced on the teacher's answers;
- agreement: share of prompts where its greedy answer equals the teacher's (after `normalize`);
- win rate against the teacher from a judge that sees both orders, with a Wilson interval.
Everything is plain data in and out; the caller loads the models and stores the result."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

from ml.data import Prompt


@dataclass(frozen=True)
class HeldOutItem:
    """One prompt of the fixed held-out sample. `teacher_answer` is the teacher's greedy answer,
    generated once per run; `score(answer) -> 1.0/0.0` is the oracle where one exists."""

    prompt: Prompt
    teacher_answer: str
    score: Optional[Callable[[str], float]] = None
    family: str = ""


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval (continuity-corrected Wilson, ml/intervals.py)."""

    value: float
    low: float
    high: float
    n: int


@dataclass
class CheckpointEval:
    """The light evaluation of one checkpoint (fields are None where the input to compute them is
    missing: no oracle, no judge, different vocabularies)."""

    step: int
    n: int
    oracle: Optional[Estimate] = None
    oracle_by_family: dict = field(default_factory=dict)
    teacher_kl: Optional[float] = None
    teacher_agreement: Optional[Estimate] = None
    win_rate: Optional[Estimate] = None
    judge: str = ""
    answers: list = field(default_factory=list)  # the greedy answers, in sample order

    def to_dict(self) -> dict:
        return asdict(self)


def holdout_sample(items: Sequence, n: int, *, seed: int = 0) -> list:
    """A fixed, seeded sample of at most n items, in a stable order (the same every checkpoint)."""
    indices = sorted(random.Random(seed).sample(range(len(items)), min(n, len(items))))
    return [items[i] for i in indices]


def estimate(outcomes: Sequence[float]) -> Optional[Estimate]:
    """Mean of outcomes in [0,1] (1 win/correct, 0.5 tie, 0 loss) with its 95% Wilson interval
    (ties count half); None for no outcomes."""
    from ml.metrics import win_rate

    if not outcomes:
        return None
    result = win_rate(list(outcomes))
    return Estimate(value=result.rate, low=result.low, high=result.high, n=len(outcomes))


def _normalize_default(text: str) -> str:
    return " ".join(text.split()).strip().lower()


def evaluate_checkpoint(
    student,
    teacher,
    tokenizer,
    sample: Sequence[HeldOutItem],
    *,
    step: int,
    judge=None,
    normalize: Callable[[str], str] = _normalize_default,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    should_stop: Optional[Callable[[], bool]] = None,
    teacher_tokenizer=None,
) -> Optional[CheckpointEval]:
    """Measure one student checkpoint on `sample` (see the module docstring). `teacher` may be None
    (no KL); `judge` is any ml.judges judge (judge_batch over JudgeItem(prompt, student, teacher)).
    `teacher_tokenizer`: the teacher's own; the KL is only computed when it is the student's
    `tokenizer` (equal vocabulary sizes alone can hide two tokenizers whose ids mean different tokens).
    Returns None when `should_stop()` turned true part-way (the run was cancelled)."""
    from ml.generation import generate
    from ml.judges import JudgeItem, judge_pairs, verdict_outcome
    from ml.alignment import same_tokenizer
    from ml.metrics import model_token_kl

    prompts = [item.prompt for item in sample]
    outputs = generate(student, tokenizer, prompts, k=1, temperature=0.0, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, should_stop=should_stop)
    if any(not o for o in outputs):
        return None
    answers = [o[0].text for o in outputs]
    result = CheckpointEval(step=step, n=len(sample), answers=answers)
    scored = [(item.family, float(item.score(answer))) for item, answer in zip(sample, answers) if item.score]
    result.oracle = estimate([s for _, s in scored])
    families: dict = {}
    for family, s in scored:
        families.setdefault(family, []).append(s)
    result.oracle_by_family = {f: sum(v) / len(v) for f, v in sorted(families.items())}
    result.teacher_agreement = estimate([float(normalize(a) == normalize(item.teacher_answer))
                                         for item, a in zip(sample, answers)])
    same = (teacher_tokenizer is None and teacher is not None and teacher.config.vocab_size == student.config.vocab_size) \
        or (teacher_tokenizer is not None and same_tokenizer(teacher_tokenizer, tokenizer))
    if teacher is not None and same:
        result.teacher_kl = model_token_kl(teacher, student, tokenizer,
                                           [(item.prompt, item.teacher_answer) for item in sample],
                                           batch_size=batch_size)
    if judge is not None and not (should_stop and should_stop()):
        items = [JudgeItem(item.prompt, a, item.teacher_answer) for item, a in zip(sample, answers)]
        verdicts = judge_pairs(judge, items, batch_size=batch_size)
        result.win_rate = estimate([verdict_outcome(v) for v in verdicts])
        result.judge = verdicts[0].judge if verdicts else ""
    return result
