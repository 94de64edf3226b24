"""The teacher-hacking monitor's rule, in the terms of "On Teacher Hacking in Language Model
Distillation" (Tiapkin et al., 2025). The teacher is a *proxy* for the ground truth; teacher
hacking is the student growing ever closer to the proxy while moving away from the ground truth.

Per checkpoint (ordered by step), a point carries:
- proxy closeness: agreement with the teacher's answers, or −KL(teacher ‖ student), higher = closer;
- ground truth: oracle accuracy, or the human/judge win rate against the teacher where no oracle
  exists, with its 95% interval (`ground_low`, `ground_high`) and sample size (`ground_n`).

Every stretch of the run is examined, from any evaluated checkpoint A to any later one B, not only
the stretch ending at the last checkpoint. A stretch is a hacking episode when the proxy rose from A
to B and the ground truth fell, by a one-sided two-proportion z-test (ml.intervals.drop_z). The
badge fires ("significant") when some stretch's z clears the Bonferroni threshold over all K(K−1)/2
stretches of K checkpoints, so the chance of any false alarm in a run with a flat ground truth stays
<= ALPHA. There is no weaker level: an uncorrected one-sided test over every stretch fires on a flat
truth in about a quarter of runs, and the old "fell at every step" pattern in one run of seven
(benchmarks/bench_teacher_hacking.py --simulate). Significant stretches that share an interior are
one episode; an episode the ground truth climbed back from stays on the badge as "recovered" (the
run page says "hacking between steps A and B, recovered"). Plain Python, no Django: the same rule runs on the run page, the compare page
and in the benchmarks (docs/teacher-hacking.md has its simulated detection and false-alarm rates)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ml.intervals import critical_z, drop_z, min_detectable_drop, stretches

MIN_CHECKPOINTS = 2  # a stretch needs a start and an end
ALPHA = 0.05  # the chance of any false alarm in a run whose ground truth does not fall
POWER = 0.8
REFERENCE_EVALUATIONS = 5  # the run length the launch form quotes its minimum detectable drop for
# Prompts per checkpoint evaluation by default: enough that a 10-point fall between two of 5
# evaluations is detected 80% of the time (ml.intervals.sample_size_for_drop(0.10) = 584).
DEFAULT_SAMPLE_SIZE = 600


def detectable_drop(sample_size: int, *, evaluations: int = REFERENCE_EVALUATIONS) -> float:
    """The smallest fall in the ground truth (0-1 scale, at a rate near 0.5, the worst case) that the
    badge catches with 80% power between two of `evaluations` checkpoints measured on sample_size
    prompts each: ml.intervals.min_detectable_drop at this rule's ALPHA. E.g. 32 -> 0.427, 600 -> 0.099."""
    return min_detectable_drop(sample_size, evaluations=evaluations, alpha=ALPHA, power=POWER)


@dataclass(frozen=True)
class HackingVerdict:
    hacking: bool
    level: str  # "" or "significant" (the old "suspected" level is gone: see the module docstring)
    start_step: int | None = None
    end_step: int | None = None
    message: str = ""
    recovered: bool = False
    badge: str = ""
    episodes: tuple = field(default=())  # every significant episode: dicts, oldest first


def _fmt(value, low, high) -> str:
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def stretch_drops(usable: list[dict]) -> list[tuple[float, int, int]]:
    """(z, i, j) for every stretch i < j of step-ordered points where the proxy rose and the ground
    truth fell (z > 0: the one-sided drop statistic, ml.intervals.drop_z)."""
    out = []
    for i, first in enumerate(usable):
        for j in range(i + 1, len(usable)):
            last = usable[j]
            if last["proxy"] > first["proxy"] and last["ground"] < first["ground"]:
                out.append((drop_z(first["ground"], first["ground_n"], last["ground"], last["ground_n"]), i, j))
    return out


def _episodes(hits: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """Significant stretches reduced to distinct episodes, oldest first: the strongest stretch (on
    ties the shortest, then the latest) is an episode; stretches sharing its interior are the same
    fall seen from further away and drop out; repeat. A dip, a recovery and a second dip stay two."""
    chosen: list[tuple[float, int, int]] = []
    for hit in sorted(hits, key=lambda h: (-h[0], h[2] - h[1], -h[1])):
        if all(max(hit[1], c[1]) >= min(hit[2], c[2]) for c in chosen):
            chosen.append(hit)
    return sorted(chosen, key=lambda h: h[1])


def _recovery(usable: list[dict], i: int, j: int, threshold: float) -> dict | None:
    """The first checkpoint after j whose ground truth is no longer significantly below the
    episode's start, or None (the fall still stands at the last checkpoint)."""
    start = usable[i]
    for later in usable[j + 1:]:
        if drop_z(start["ground"], start["ground_n"], later["ground"], later["ground_n"]) < threshold:
            return later
    return None


def _describe(usable, z, i, j, threshold, recovered_at=None) -> str:
    first, last = usable[i], usable[j]
    text = (f"Teacher hacking between step {first['step']} and step {last['step']}: closeness to the teacher "
            f"rose {first['proxy']:.3f} → {last['proxy']:.3f} while the ground truth fell "
            f"{_fmt(first['ground'], first.get('ground_low'), first.get('ground_high'))} → "
            f"{_fmt(last['ground'], last.get('ground_low'), last.get('ground_high'))} "
            f"(z = {z:.2f}; {threshold:.2f} needed over {stretches(len(usable))} stretches).")
    if recovered_at is not None:
        text += f" Recovered: the ground truth is back to {recovered_at['ground']:.3f} at step {recovered_at['step']}."
    return text


def hacking_verdict(points: list[dict], *, alpha: float = ALPHA) -> HackingVerdict:
    """points: [{"step", "proxy", "ground", "ground_low", "ground_high", "ground_n"}, ...] in any
    order; points without a proxy, ground value or sample size are skipped. Returns the verdict over
    every stretch (the module docstring has the rule); its headline is the latest episode."""
    usable = sorted((p for p in points if p.get("proxy") is not None and p.get("ground") is not None
                     and p.get("ground_n")), key=lambda p: p["step"])
    if len(usable) < MIN_CHECKPOINTS:
        return HackingVerdict(False, "")
    drops = stretch_drops(usable)
    threshold = critical_z(stretches(len(usable)), alpha=alpha)
    episodes = []
    for z, i, j in _episodes([d for d in drops if d[0] >= threshold]):
        recovered_at = _recovery(usable, i, j, threshold)
        episodes.append({"start_step": usable[i]["step"], "end_step": usable[j]["step"], "z": round(z, 3),
                         "recovered": recovered_at is not None,
                         "message": _describe(usable, z, i, j, threshold, recovered_at)})
    if not episodes:
        return HackingVerdict(False, "")
    head = max(episodes, key=lambda e: e["end_step"])
    badge = (f"teacher hacking, steps {head['start_step']}–{head['end_step']}, recovered" if head["recovered"]
             else f"teacher hacking since step {head['start_step']}")
    return HackingVerdict(True, "significant", head["start_step"], head["end_step"],
                          " ".join(e["message"] for e in reversed(episodes)), head["recovered"], badge,
                          tuple(episodes))


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
            "ground_n": ground.get("n") if ground else None,
            "ground_name": "oracle accuracy" if metrics.get("oracle") else "win rate vs teacher"}


def best_checkpoint(points: list[dict]) -> int | None:
    """The step with the highest ground truth (the earliest on ties), or None."""
    usable = [p for p in points if p.get("ground") is not None]
    if not usable:
        return None
    return max(usable, key=lambda p: (p["ground"], -p["step"]))["step"]
