"""The generative judge (ALGORITHMS.md §7, docs/judging.md) on an endpoint teacher: the same question
as ml.judges.GenerativeJudge (its template and answer labels, default "A"/"B"), asked in BOTH
presentation orders and averaged into one P(a ≻ b); the one verdict rule stays
ml.judges.verdict_outcome.

White-box endpoints (the probe found prompt_logprobs and /tokenize: vLLM, SGLang) are read EXACTLY
as the in-worker judge reads its logits: the judge prompt is tokenized by the server's chat template
(/tokenize with messages), each answer label's first token id is found the same way GenerativeJudge
finds it (the template's assistant opener followed by the label), and per order and label one
/v1/completions request scores prompt + label id with prompt_logprobs=1 — vLLM lists the actual
token's log-prob at each position whatever its rank — so log p(A) and log p(B) at the answer position
are the full-vocabulary ones. P and the answer mass then go through ml.judges.answer_verdicts, the
in-worker judge's own arithmetic (same renormalisation, same low-answer-mass mark).

Black-box endpoints (chat only, or top_logprobs on their own output) answer through
/v1/chat/completions: P(first) comes from the answer position's top_logprobs when the server gives
them: p_A / (p_A + p_B), each the summed probability of the alternatives that read as the label
("A", " A", ...) at the first position where either label appears. When only one label is among the
top alternatives, the other's probability is at most the smallest listed one, and that bound is used
(details "p_source": "top_logprobs_bound"). Without log-probs (or no label among the alternatives)
the answer text is parsed: the first standalone label decides, P = 1 or 0 ("p_source": "text"). An
order whose answer names neither label is unparseable: the verdict rests on the other order alone
(order "ab"/"ba", details "unparseable_orders"); when both are, the verdict says {"unparseable":
true, "raw": <answer, first 200 characters>} with p = 0.5, which callers must not count as a tie."""
from __future__ import annotations

import logging
import math
import re
from typing import Sequence

import torch

from ml.chat import truncate_left
from ml.config import DEFAULT_JUDGE_TEMPLATE, DEFAULT_ANSWER_MASS_THRESHOLD, check_judge_template
from ml.endpoints.client import EndpointClient
from ml.endpoints.spec import WHITE_BOX
from ml.judges import JudgeItem, Verdict, _prompt_text, answer_verdicts, check_answer_mass

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
    """judge_batch(items) -> one Verdict per item. White-box (`exact`): as ml.judges.GenerativeJudge
    (order "both"; details p_ab, p_ba, answer_mass_ab/_ba, "low_answer_mass" below warn_below,
    p_source "prompt_logprobs"; refuse_below raises ml.judges.JudgeFormatError). Black-box: order
    "both", or the one order that parsed; details p_ab, p_ba (None when unparseable),
    p_source_ab/_ba, answer_mass_ab/_ba (None without log-probs), and the unparseable markers above.
    `capability` (the probe's record) decides `exact` when it is not given (white-box with
    prompt_logprobs), gives the window (its max_model_len) and caps top_logprobs at what the server
    allows (0: the answer text is parsed), so a hosted API is not sent a field it refuses."""

    def __init__(self, client: EndpointClient, template: str = DEFAULT_JUDGE_TEMPLATE,
                 labels: tuple[str, str] = ("A", "B"), *, top_logprobs: int | None = 20, max_tokens: int = 8,
                 warn_below: float = DEFAULT_ANSWER_MASS_THRESHOLD, refuse_below: float | None = None,
                 capability: dict | None = None, exact: bool | None = None):
        check_judge_template(template, labels)
        if capability is not None:  # the probe's record: ask no more alternatives than the server gives
            top_logprobs = min(top_logprobs or 0, int(capability.get("top_logprobs_max") or 0)) or None
        if exact is None:
            exact = bool(capability and capability.get("kind") == WHITE_BOX and capability.get("prompt_logprobs"))
        self.client, self.template, self.labels = client, template, tuple(labels)
        self.top_logprobs, self.max_tokens, self.exact = top_logprobs, max_tokens, exact
        self.warn_below, self.refuse_below = warn_below, refuse_below
        self.window = int(((capability or {}).get("model") or {}).get("max_model_len") or 0) or None
        self._label_ids: list[int] | None = None
        self.identity = (f"generative(endpoint={client.spec.model}@{client.base_url}, "
                         f"answers={'/'.join(self.labels)})")

    def close(self) -> None:
        """Closes the client (its pooled connections): the judge owns it once built for a job."""
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _text(self, prompt, first: str, second: str) -> str:
        return self.template.format(prompt=_prompt_text(prompt), first=first, second=second,
                                    first_label=self.labels[0], second_label=self.labels[1])

    def _messages(self, prompt, first: str, second: str) -> list[dict]:
        return [{"role": "user", "content": self._text(prompt, first, second)}]

    # -- white-box: the answer tokens' exact log-probs ----------------------------------------
    def label_ids(self) -> list[int]:
        """Each label's first answer token id, found as GenerativeJudge._first_answer_token finds it:
        the server's template up to the assistant opener, then the label, must add exactly one token
        (else the label alone must be one token the opener is followed by)."""
        if self._label_ids is None:
            messages = self._messages("x", "y", "z")
            opener = self.client.tokenize(messages=messages)
            ids = []
            for label in self.labels:
                with_answer = self.client.tokenize(messages=messages + [{"role": "assistant", "content": label}],
                                                   continue_final_message=True)
                if with_answer[: len(opener)] == opener and len(with_answer) == len(opener) + 1:
                    ids.append(with_answer[-1])
                    continue
                alone = self.client.tokenize(label, add_special_tokens=False)
                if len(alone) != 1 or with_answer[: len(opener)] != opener[: len(with_answer)]:
                    raise ValueError(f"answer label {label!r} is {len(with_answer) - len(opener)} tokens where the "
                                     f"judge starts its answer (alone: {len(alone)}) on {self.client.spec.model}; "
                                     "it must be one")
                ids.append(alone[0])
            if ids[0] == ids[1]:
                raise ValueError(f"answer labels {self.labels} map to the same token id")
            self._label_ids = ids
        return self._label_ids

    def _clip(self, text: str, max_tokens: int) -> str:
        ids = self.client.tokenize(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else self.client.detokenize(ids[:max_tokens]) + " …"

    def _judge_ids(self, prompt, first: str, second: str) -> list[int]:
        """The judge prompt's ids by the server's template; over the window (less the answer token
        and the one generated) each response keeps its head in equal shares, as in-worker."""
        ids = self.client.tokenize(messages=self._messages(prompt, first, second))
        window = None if self.window is None else self.window - 2
        if window is None or len(ids) <= window:
            return ids
        room = window - len(self.client.tokenize(messages=self._messages(prompt, "", ""))) - 8
        if room < 2:
            raise ValueError(f"the judge prompt alone exceeds the endpoint's window of {self.window} tokens")
        ids = self.client.tokenize(messages=self._messages(prompt, self._clip(first, room // 2),
                                                           self._clip(second, room // 2)))
        return truncate_left(ids, window, keep_first=False)

    def _label_logp(self, ids: list[int], label_id: int) -> float:
        body = self.client.completions({"prompt": ids + [label_id], "max_tokens": 1, "temperature": 0,
                                        "prompt_logprobs": 1})
        last = body["choices"][0]["prompt_logprobs"][-1]  # the answer position: holds the actual token
        return float(last[str(label_id)]["logprob"])

    def _judge_exact(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        label_ids = self.label_ids()
        shown = [(it.prompt, it.response_a, it.response_b) for it in items]
        shown += [(it.prompt, it.response_b, it.response_a) for it in items]
        rows = self.client.map(lambda args: self._judge_ids(*args), shown)
        logps = self.client.map(lambda job: self._label_logp(rows[job[0]], label_ids[job[1]]),
                                [(r, k) for r in range(len(rows)) for k in (0, 1)])
        answer_logps = torch.tensor(logps, dtype=torch.float64).view(len(rows), 2)  # (2B,2)
        mass = answer_logps.exp().sum(-1)  # (2B,)
        check_answer_mass(mass, identity=self.identity, labels=self.labels, refuse_below=self.refuse_below)
        verdicts = answer_verdicts(answer_logps, mass, identity=self.identity, warn_below=self.warn_below)
        return [Verdict(v.p_a_over_b, v.judge, v.order, {**v.details, "p_source_ab": "prompt_logprobs",
                                                        "p_source_ba": "prompt_logprobs"})
                for v in verdicts]

    # -- black-box: the chat answer's top_logprobs, else its text ------------------------------
    def _ask(self, prompt, first: str, second: str) -> dict:
        body = {"messages": self._messages(prompt, first, second), "max_tokens": self.max_tokens, "temperature": 0}
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
        if self.exact:
            return self._judge_exact(items)
        asks = [(it.prompt, it.response_a, it.response_b) for it in items]
        asks += [(it.prompt, it.response_b, it.response_a) for it in items]
        answers = self.client.map(lambda args: self._ask(*args), asks)
        verdicts = [self._verdict(ab, ba) for ab, ba in zip(answers[: len(items)], answers[len(items):])]
        return [self._mark_low(v) for v in verdicts]

    def _mark_low(self, verdict: Verdict) -> Verdict:
        """As answer_verdicts marks in-worker: the verdict's mean answer mass over the orders whose
        log-probs were read, below warn_below -> "low_answer_mass" (nothing read: no mark)."""
        masses = [m for key in ("answer_mass_ab", "answer_mass_ba") if (m := verdict.details[key]) is not None]
        if not masses or sum(masses) / len(masses) >= self.warn_below:
            return verdict
        log.warning("endpoint judge %s: answer mass %.3f < %.2f; this verdict may be noise",
                    self.identity, sum(masses) / len(masses), self.warn_below)
        return Verdict(verdict.p_a_over_b, verdict.judge, verdict.order, {**verdict.details, "low_answer_mass": True})

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
