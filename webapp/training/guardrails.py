"""The DPO collapse guardrail of the run page. DPO can raise its margins by pushing BOTH answers'
likelihood down, the chosen one included ("likelihood displacement"); on small students this ends
in degenerate text. Its signature is `logps/chosen` (the policy's summed log-prob of the chosen
answers, ALGORITHMS.md §3) falling steadily. Plain Python over the stored metric points, and the
only copy of the rule: the page renders it on load, the run socket's snapshot carries it, and every
stored batch of points with logps/chosen publishes it again (run.guardrail, webapp/training/events.py),
so the warning appears, and goes, while the page is open.

The rule: over the last WINDOW points that carry `logps/chosen` (at least MIN_POINTS), split into
four consecutive, equal chunks; the chunk means fall at every chunk and the total fall exceeds
max(MIN_DROP nats, 10% of the starting |mean|). Chunk means ignore the batch-to-batch noise of
single points, and the size floor ignores the small drift every DPO run shows."""
from django.db.models import F

from webapp.training.models import MetricPoint

KEY = "logps/chosen"
MIN_POINTS = 8
WINDOW = 400
MIN_DROP = 1.0


def collapse_verdict(points: list[tuple[int, float]]) -> dict | None:
    """points: [(step, logps/chosen)] in step order. None, or {"start_step", "end_step", "from", "to",
    "message"} when logps/chosen fell steadily."""
    points = points[-WINDOW:]
    if len(points) < MIN_POINTS:
        return None
    size = len(points) // 4
    chunks = [points[len(points) - size * (4 - i):len(points) - size * (3 - i)] for i in range(4)]
    means = [sum(v for _, v in chunk) / len(chunk) for chunk in chunks]
    falling = all(later < earlier for earlier, later in zip(means, means[1:]))
    drop = means[0] - means[-1]
    if not falling or drop <= max(MIN_DROP, 0.1 * abs(means[0])):
        return None
    start, end = chunks[0][0][0], chunks[-1][-1][0]
    return {"start_step": start, "end_step": end, "from": means[0], "to": means[-1],
            "message": (f"logps/chosen fell steadily from {means[0]:.2f} to {means[-1]:.2f} (steps {start}–{end}): DPO "
                        "is pushing the chosen answers' likelihood down with the rejected ones, the collapse signature. "
                        "Consider an NLL anchor (rpo_alpha), a lower learning rate or a larger β; evaluate before using "
                        "this checkpoint.")}


def run_collapse(*, run) -> dict | None:
    """The verdict for a run's stored metric points (one query, only the one value)."""
    rows = (MetricPoint.objects.filter(run=run, values__has_key=KEY).order_by("-step")
            .annotate(value=F(f"values__{KEY}")).values_list("step", "value")[:WINDOW])
    points = [(step, float(value)) for step, value in reversed(rows) if value is not None]
    return collapse_verdict(points)
