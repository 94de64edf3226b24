"""Evaluation and agreement statistics: win rates with Wilson score intervals (ml/intervals.py) and
Bradley-Terry scores with bootstrap confidence intervals, oracle task accuracy per family, token-level KL from teacher to student, response length
summaries. Chance-corrected agreement between raters (Cohen's κ, Krippendorff's α) lives in
ml/agreement.py (standard library only, shared with the web process). Plain numpy/scipy on plain lists; only the KL functions touch torch, imported inside them so that
a process without torch (a web page showing annotator agreement) can still use the rest."""
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
from scipy.sparse.csgraph import connected_components

from ml.intervals import wilson_interval


@dataclass(frozen=True)
class WinRate:
    rate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class BTScore:
    """Bradley-Terry log-strength: P(a beats b) = sigmoid(score_a - score_b)."""

    score: float
    low: float
    high: float


@dataclass(frozen=True)
class OracleAccuracy:
    overall: float
    by_family: dict
    counts: dict


@dataclass(frozen=True)
class LengthStats:
    mean: float
    median: float
    p90: float
    n: int


def _percentile_interval(samples: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """samples (n_boot, ...) -> (low, high) percentile bounds along axis 0, ignoring NaN draws."""
    tail = 100.0 * (1.0 - ci) / 2.0
    return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)


def win_rate(outcomes: Sequence[float], *, ci: float = 0.95) -> WinRate:
    """outcomes (N,) with 1 = win, 0.5 = tie, 0 = loss -> mean with a continuity-corrected Wilson
    score interval, ties counted as half a win (ml.intervals.wilson_interval: honest coverage at
    small N and near 0 or 1, never zero width). E.g. [1, 1, 0, 0.5]: 2.5 of 4 -> 0.625."""
    values = np.asarray(outcomes, dtype=float)
    if values.size == 0:
        raise ValueError("win_rate needs at least one outcome")
    if not np.all(np.isin(values, (0.0, 0.5, 1.0))):
        raise ValueError("win_rate outcomes must be 1 (win), 0.5 (tie) or 0 (loss)")
    low, high = wilson_interval(float(values.sum()), int(values.size), ci=ci)
    return WinRate(rate=float(values.mean()), low=low, high=high, n=int(values.size))


def _bt_fit(wins: np.ndarray, games: np.ndarray, *, max_iter: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """wins (P,P) with wins[i,j] = times i beat j (ties as 1/2 each way), games = wins + wins.T ->
    (P,) log-strengths (mean 0) by Hunter's (2004) minorize-maximize iteration
    gamma_i <- W_i / sum_j n_ij / (gamma_i + gamma_j). NaN where the MLE does not exist (a player
    who never won or never lost, or a comparison graph in pieces)."""
    n_players = wins.shape[0]
    n_pieces, _ = connected_components(games > 0, directed=False)
    won = wins.sum(axis=1)
    lost = wins.sum(axis=0)
    if n_pieces > 1 or np.any(won <= 0) or np.any(lost <= 0):
        return np.full(n_players, np.nan)
    gamma = np.ones(n_players)
    for _ in range(max_iter):
        new_gamma = won / (games / (gamma[:, None] + gamma[None, :])).sum(axis=1)
        new_gamma /= np.exp(np.log(new_gamma).mean())
        if np.max(np.abs(np.log(new_gamma) - np.log(gamma))) < tol:
            gamma = new_gamma
            break
        gamma = new_gamma
    return np.log(gamma)


def _win_matrix(index: np.ndarray, outcomes: np.ndarray, edges: np.ndarray, n_players: int,
                prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair rows (M,2) of player indices with outcomes (M,) for the first player -> (wins, games),
    plus `prior` virtual ties on every compared edge (E,2) so that an unbeaten player stays finite."""
    wins = np.zeros((n_players, n_players))
    np.add.at(wins, (index[:, 0], index[:, 1]), outcomes)
    np.add.at(wins, (index[:, 1], index[:, 0]), 1.0 - outcomes)
    np.add.at(wins, (edges[:, 0], edges[:, 1]), prior / 2.0)
    np.add.at(wins, (edges[:, 1], edges[:, 0]), prior / 2.0)
    return wins, wins + wins.T


def bradley_terry(pairs: Sequence[tuple[Hashable, Hashable, float]], *, n_boot: int = 1000, seed: int = 0,
                  ci: float = 0.95, reference: Optional[Hashable] = None, prior: float = 1.0) -> dict:
    """pairs of (a_id, b_id, outcome for a: 1 / 0.5 / 0) -> {id: BTScore} on the natural-log scale.

    Maximum likelihood with ties as half a win each way, plus `prior` virtual ties on every pair of
    players that met (a light shrinkage that keeps unbeaten players finite; prior=0 is the plain
    MLE, e.g. two players with w_a and w_b wins: score_a - score_b = log(w_a / w_b)). Scores are
    anchored so their mean is 0, or so `reference` scores 0. Intervals: percentile bootstrap over
    pairs; a resample without a finite MLE is skipped."""
    if not pairs:
        raise ValueError("bradley_terry needs at least one pair")
    players = list(dict.fromkeys(p for a, b, _ in pairs for p in (a, b)))
    if reference is not None and reference not in players:
        raise ValueError(f"reference {reference!r} is not among the compared players")
    position = {p: i for i, p in enumerate(players)}
    index = np.array([(position[a], position[b]) for a, b, _ in pairs])  # (M,2)
    outcomes = np.array([o for _, _, o in pairs], dtype=float)  # (M,)
    edges = np.unique(np.sort(index, axis=1), axis=0)  # (E,2)

    def fit(rows: np.ndarray) -> np.ndarray:
        wins, games = _win_matrix(index[rows], outcomes[rows], edges, len(players), prior)
        scores = _bt_fit(wins, games)
        return scores - (scores[position[reference]] if reference is not None else scores.mean())

    scores = fit(np.arange(len(pairs)))
    if np.any(np.isnan(scores)):
        raise ValueError("no finite Bradley-Terry fit: some player never won or never lost, or the "
                         "comparison graph is disconnected; use prior > 0 or add comparisons")
    rng = np.random.default_rng(seed)
    boot = np.array([fit(rng.integers(0, len(pairs), size=len(pairs))) for _ in range(n_boot)])
    low, high = _percentile_interval(boot, ci) if n_boot else (scores, scores)
    return {p: BTScore(score=float(scores[i]), low=float(low[i]), high=float(high[i]))
            for p, i in position.items()}


def _field(task, name: str):
    return task[name] if isinstance(task, dict) else getattr(task, name)


def oracle_accuracy(tasks: Sequence, responses: Sequence[str], scorer: Callable[[object, str], float]
                    ) -> OracleAccuracy:
    """Mean oracle score per task family and overall. tasks carry a `family` (attribute or key);
    scorer(task, response) -> 1.0 correct, 0.0 wrong (partial credit in between is averaged)."""
    if len(tasks) != len(responses):
        raise ValueError(f"{len(tasks)} tasks but {len(responses)} responses")
    if not tasks:
        raise ValueError("oracle_accuracy needs at least one task")
    by_family = defaultdict(list)
    for task, response in zip(tasks, responses):
        by_family[_field(task, "family")].append(float(scorer(task, response)))
    all_scores = [s for scores in by_family.values() for s in scores]
    return OracleAccuracy(overall=float(np.mean(all_scores)),
                          by_family={f: float(np.mean(s)) for f, s in sorted(by_family.items())},
                          counts={f: len(s) for f, s in sorted(by_family.items())})


def token_kl(teacher_logits, student_logits, mask) -> float:
    """teacher_logits, student_logits (B,T,V) tensors; mask (B,T) True at response tokens -> mean
    over the masked tokens of KL(p_teacher || p_student), in nats (0.0 for an empty mask)."""
    import torch

    from ml.losses.common import token_kl as _kl_per_token

    teacher_logps = torch.log_softmax(teacher_logits.double(), dim=-1)
    student_logps = torch.log_softmax(student_logits.double(), dim=-1)
    kl = _kl_per_token(teacher_logps, student_logps)  # (B,T)
    mask = mask.to(kl.dtype)
    return float((kl * mask).sum() / mask.sum().clamp(min=1.0))


def model_token_kl(teacher, student, tokenizer, items: Sequence[tuple], *, batch_size: int = 8,
                   on_progress: Optional[Callable[[int, int], None]] = None) -> float:
    """Mean per-token KL(teacher || student) teacher-forced on held-out (prompt, response) items,
    pooled over all response tokens. Both models must share `tokenizer` (same vocabulary)."""
    import torch

    from ml.judges import response_batch  # judges owns the prompt+response tokenization

    if teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"teacher and student vocabularies differ ({teacher.config.vocab_size} vs "
                         f"{student.config.vocab_size}): token-level KL needs one shared tokenizer")
    kl_sum, n_tokens = 0.0, 0
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        input_ids, attention_mask, labels = response_batch(tokenizer, [p for p, _ in chunk],
                                                           [r for _, r in chunk])
        with torch.inference_mode():
            teacher_logits = teacher(input_ids=input_ids.to(teacher.device),
                                     attention_mask=attention_mask.to(teacher.device)).logits[:, :-1]
            student_logits = student(input_ids=input_ids.to(student.device),
                                     attention_mask=attention_mask.to(student.device)).logits[:, :-1]
        mask = labels[:, 1:] != -100  # (B,T-1): logits at t predict the token at t+1
        count = int(mask.sum())
        kl_sum += token_kl(teacher_logits.cpu(), student_logits.cpu(), mask) * count
        n_tokens += count
        if on_progress:
            on_progress(min(start + batch_size, len(items)), len(items))
    return kl_sum / max(n_tokens, 1)


def length_stats(lengths: Sequence, *, tokenizer=None) -> LengthStats:
    """Token counts, or texts (measured in tokens with `tokenizer`, else in whitespace-separated
    words) -> mean, median and 90th percentile (linear interpolation)."""
    if not lengths:
        raise ValueError("length_stats needs at least one length")
    counts = np.array([
        (len(tokenizer(x, add_special_tokens=False)["input_ids"]) if tokenizer else len(x.split()))
        if isinstance(x, str) else x
        for x in lengths], dtype=float)
    return LengthStats(mean=float(counts.mean()), median=float(np.median(counts)),
                       p90=float(np.percentile(counts, 90)), n=int(counts.size))

