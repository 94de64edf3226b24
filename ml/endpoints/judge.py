"""The generative judge (ALGORITHMS.md §7, docs/judging.md) on an endpoint teacher: the same question
as ml.judges.GenerativeJudge (DEFAULT_JUDGE_TEMPLATE, answer labels "A"/"B"), asked through
/v1/chat/completions in BOTH presentation orders, averaged into one P(a ≻ b); the one verdict rule
stays ml.judges.verdict_outcome.

Per order, P(first shown is better) comes from the answer position's top_logprobs when the server
gives them: p_A / (p_A + p_B), each the summed probability of the alternatives that read as the
label ("A", " A", ...) at the first position where either label appears. When only one label is
among the top alternatives, the other's probability is at most the smallest listed one, and that
bound is used (details "p_source": "top_logprobs_bound"). Without log-probs (a black-box API
without them, or no label among the alternatives) the answer text is parsed: the first standalone
label decides, P = 1 or 0 ("p_source": "text"). An order whose answer names neither label is
unparseable: the verdict rests on the other order alone (order "ab"/"ba", details
"unparseable_orders"); when both are, the verdict says {"unparseable": true, "raw": <answer, first
200 characters>} with p = 0.5, which callers must not count as a tie."""
from __future__ import annotations

import logging
import math
import re
from typing import Sequence

from ml.endpoints.client import EndpointClient
from ml.judges import DEFAULT_JUDGE_TEMPLATE, JudgeItem, Verdict, _prompt_text

log = logging.getLogger(__name__)


def label_probability(content: list[dict], labels: tuple[str, str]) -> tuple[float, float, str] | None:
    """content: chat logprobs.content ([{token, logprob, top_logprobs: [{token, logprob}]}]) ->
    (P(first label over second), answer mass p_A + p_B, source) at the first position where a label
    appears among the alternatives, or None when no position shows one."""
    for step in content:
        alternatives = step.get("top_logprobs") or [{"token": step.get("token", ""), "logprob": step.get("logprob")}]
        probs = [0.0, 0.0]
        listed = [math.exp(float(a["logprob"])) for a in alternatives if a.get("logprob") is not None]
        for alt in alternatives:
            token = str(alt.get("token", "")).strip()
            if token in labels and alt.get("logprob") is not None:
                probs[labels.index(token)] += math.exp(float(alt["logprob"]))
        if probs[0] == 0.0 and probs[1] == 0.0:
            continue
        if probs[0] > 0 and probs[1] > 0:
            return probs[0] / (probs[0] + probs[1]), probs[0] + probs[1], "top_logprobs"
        bound = min(listed)  # the missing label is at most as likely as the least likely listed token
        p_first = probs[0] / (probs[0] + bound) if probs[0] else bound / (bound + probs[1])
        return p_first, sum(probs), "top_logprobs_bound"
    return None


def text_answer(text: str, labels: tuple[str, str]) -> float | None:
    """1.0 when the first standalone label in `text` is the first label, 0.0 for the second, None if neither."""
    match = re.search(r"(?<![\w])(" + "|".join(map(re.escape, labels)) + r")(?![\w])", text or "")
    return None if match is None else (1.0 if match.group(1) == labels[0] else 0.0)


class EndpointJudge:
    """judge_batch(items) -> one Verdict per item (order "both", or the one order that parsed).
    details: p_ab, p_ba (P(a ≻ b) per order, None when unparseable), p_source_ab/_ba,
    answer_mass_ab/_ba (None without log-probs), and the unparseable markers described above.
    `capability` (the probe's record, optional) caps top_logprobs at what the server allows (0: the
    answer text is parsed), so a hosted API without log-probs is not sent a field it refuses."""

    def __init__(self, client: EndpointClient, template: str = DEFAULT_JUDGE_TEMPLATE,
                 labels: tuple[str, str] = ("A", "B"), *, top_logprobs: int | None = 20, max_tokens: int = 8,
                 warn_below: float = 0.5, capability: dict | None = None):
        try:
            template.format(prompt="", first="", second="", first_label="", second_label="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"judge template: {error!r}; allowed fields are {{prompt}}, {{first}}, "
                             "{second}, {first_label}, {second_label}") from None
        if "{first}" not in template or "{second}" not in template:
            raise ValueError("judge template must show both responses: {first} and {second}")
        if len(set(labels)) != 2:
            raise ValueError(f"two different answer labels are needed, got {labels}")
        if capability is not None:  # the probe's record: ask no more alternatives than the server gives
            top_logprobs = min(top_logprobs or 0, int(capability.get("top_logprobs_max") or 0)) or None
        self.client, self.template, self.labels = client, template, tuple(labels)
        self.top_logprobs, self.max_tokens, self.warn_below = top_logprobs, max_tokens, warn_below
        self.identity = (f"generative(endpoint={client.spec.model}@{client.base_url}, "
                         f"answers={'/'.join(self.labels)})")

    def _ask(self, prompt, first: str, second: str) -> dict:
        text = self.template.format(prompt=_prompt_text(prompt), first=first, second=second,
                                    first_label=self.labels[0], second_label=self.labels[1])
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": self.max_tokens, "temperature": 0}
        if self.top_logprobs:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        choice = self.client.chat(body)["choices"][0]
        answer = (choice.get("message") or {}).get("content") or ""
        content = ((choice.get("logprobs") or {}).get("content")) or []
        read = label_probability(content, self.labels) if content else None
        if read is not None:
            return {"p_first": read[0], "mass": read[1], "source": read[2], "raw": answer}
        parsed = text_answer(answer, self.labels)
        return {"p_first": parsed, "mass": 0.0 if content else None, "source": None if parsed is None else "text",
                "raw": answer}

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        asks = [(it.prompt, it.response_a, it.response_b) for it in items]
        asks += [(it.prompt, it.response_b, it.response_a) for it in items]
        answers = self.client.map(lambda args: self._ask(*args), asks)
        verdicts = [self._verdict(ab, ba) for ab, ba in zip(answers[: len(items)], answers[len(items):])]
        masses = [m for a in answers if (m := a["mass"]) is not None]
        if masses and sum(masses) / len(masses) < self.warn_below:
            log.warning("endpoint judge %s: mean answer mass %.3f < %.2f; verdicts may be noise",
                        self.identity, sum(masses) / len(masses), self.warn_below)
            verdicts = [Verdict(v.p_a_over_b, v.judge, v.order, {**v.details, "low_answer_mass": True})
                        for v in verdicts]
        return verdicts

    def _verdict(self, ab: dict, ba: dict) -> Verdict:
        p_ab = ab["p_first"]
        p_ba = None if ba["p_first"] is None else 1.0 - ba["p_first"]  # b was shown first
        details = {"p_ab": p_ab, "p_ba": p_ba, "p_source_ab": ab["source"], "p_source_ba": ba["source"],
                   "answer_mass_ab": ab["mass"], "answer_mass_ba": ba["mass"]}
        if p_ab is not None and p_ba is not None:
            return Verdict((p_ab + p_ba) / 2, self.identity, "both", details)
        if p_ab is None and p_ba is None:
            raw = f"ab: {ab['raw']} | ba: {ba['raw']}"[:200]
            return Verdict(0.5, self.identity, "both", {**details, "unparseable": True, "raw": raw})
        order, p, bad = ("ab", p_ab, ba) if p_ab is not None else ("ba", p_ba, ab)
        return Verdict(p, self.identity, order, {**details, "unparseable_orders": ["ba" if order == "ab" else "ab"],
                                                 "raw": bad["raw"][:200]})
