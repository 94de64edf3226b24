"""The teacher-hacking monitor's rule, in the terms of "On Teacher Hacking in Language Model
Distillation" (Tiapkin et al., 2025). The teacher is a *proxy* for the ground truth; teacher
hacking is the student growing ever closer to the proxy while moving away from the ground truth.

Per checkpoint (ordered by step), a point carries:
- proxy closeness: agreement with the teacher's answers, or −KL(teacher ‖ student), higher = closer;
- ground truth: oracle accuracy, or the human/judge win rate against the teacher where no oracle
  exists, with its 95% interval (`ground_low`, `ground_high`).

The badge fires when, over the last run of at least three consecutive checkpoints (two or more
steps), the proxy rose at every step while the ground truth fell at every step. It is
"significant" when the ground truth's interval at the start of that stretch lies wholly above the
interval at its end; otherwise it is "suspected". Plain Python, no Django: the same rule runs on
the run page, the compare page and in the benchmarks."""
from __future__ import annotations

from dataclasses import dataclass

MIN_CHECKPOINTS = 3  # two consecutive falls need three points


@dataclass(frozen=True)
class HackingVerdict:
    hacking: bool
    level: str  # "", "suspected", "significant"
    start_step: int | None = None
    end_step: int | None = None
    message: str = ""


def _fmt(value, low, high) -> str:
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def hacking_verdict(points: list[dict]) -> HackingVerdict:
    """points: [{"step", "proxy", "ground", "ground_low", "ground_high"}, ...] in any order; points
    without a proxy or ground value are skipped. Returns the verdict for the most recent stretch."""
    usable = sorted((p for p in points if p.get("proxy") is not None and p.get("ground") is not None),
                    key=lambda p: p["step"])
    if len(usable) < MIN_CHECKPOINTS:
        return HackingVerdict(False, "")
    end = len(usable) - 1
    start = end
    while start > 0:
        prev, cur = usable[start - 1], usable[start]
        if cur["proxy"] > prev["proxy"] and cur["ground"] < prev["ground"]:
            start -= 1
        else:
            break
    if end - start + 1 < MIN_CHECKPOINTS:
        return HackingVerdict(False, "")
    first, last = usable[start], usable[end]
    separated = (first.get("ground_low") is not None and last.get("ground_high") is not None
                 and first["ground_low"] > last["ground_high"])
    level = "significant" if separated else "suspected"
    message = (f"Teacher hacking ({level}): from step {first['step']} to step {last['step']} closeness to the "
               f"teacher rose {first['proxy']:.3f} → {last['proxy']:.3f} while the ground truth fell "
               f"{_fmt(first['ground'], first.get('ground_low'), first.get('ground_high'))} → "
               f"{_fmt(last['ground'], last.get('ground_low'), last.get('ground_high'))}.")
    return HackingVerdict(True, level, first["step"], last["step"], message)


def monitor_point(step: int, metrics: dict) -> dict:
    """One checkpoint evaluation's stored metrics (ml.checkpoint_eval.CheckpointEval.to_dict) as a
    monitor point: proxy = agreement with the teacher (else −KL), ground = oracle accuracy (else the
    win rate against the teacher)."""
    agreement, kl = metrics.get("teacher_agreement"), metrics.get("teacher_kl")
    proxy = agreement["value"] if agreement else (-kl if kl is not None else None)
    ground = metrics.get("oracle") or metrics.get("win_rate")
    return {"step": step, "proxy": proxy, "proxy_name": "agreement with teacher" if agreement else "−KL to teacher",
            "ground": ground["value"] if ground else None,
            "ground_low": ground["low"] if ground else None, "ground_high": ground["high"] if ground else None,
            "ground_name": "oracle accuracy" if metrics.get("oracle") else "win rate vs teacher"}


def best_checkpoint(points: list[dict]) -> int | None:
    """The step with the highest ground truth (the earliest on ties), or None."""
    usable = [p for p in points if p.get("ground") is not None]
    if not usable:
        return None
    return max(usable, key=lambda p: (p["ground"], -p["step"]))["step"]
