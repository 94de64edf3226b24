"""The teacher as judge (ALGORITHMS.md §7): three ways to turn a teacher into a pairwise verdict
P(a ≻ b | x) — the DPO implicit reward, length-normalized likelihood, and asking an instruction-tuned
teacher which response is better in both presentation orders — behind one batched interface,
`judge_pairs`. A verdict records its probability, the judge's identity (method and model sources)
and the order(s) the pair was shown in. Every input is tokenized by ml.chat (the path generation and
training use) and cut to the model's window. `verdict_outcome` is THE rule that turns a verdict into a
win, loss or tie, for judge jobs and evaluations alike: the sign of the order-averaged probability."""
import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from ml.chat import context_window, prompt_ids, render_prompt, response_ids, truncate_left
from ml.config import DEFAULT_JUDGE_TEMPLATE, check_judge_template  # noqa: F401 (re-exported)
from ml.data import Prompt
from ml.losses.common import IGNORE_INDEX, sequence_logps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeItem:
    prompt: Prompt
    response_a: str
    response_b: str


@dataclass(frozen=True)
class Verdict:
    """p_a_over_b = P(a ≻ b | prompt); order is "ab", "ba" or "both" (averaged over the two)."""

    p_a_over_b: float
    judge: str
    order: str
    details: dict = field(default_factory=dict)


def model_source(model) -> str:
    """Where a model was loaded from (its directory or hub id), for a judge's identity."""
    return getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "_name_or_path", "") \
        or type(model).__name__


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pad_right(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def response_batch(tokenizer, prompts: Sequence[Prompt], responses: Sequence[str], *, max_length: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt ids + response ids closed by the end-of-turn token (ml.chat), right-padded ->
    input_ids (B,T), attention_mask (B,T), labels (B,T) equal to input_ids on response tokens (the
    closing token included: a judged response is a finished one, as in DPO training) and IGNORE_INDEX
    on prompt and padding. Unshifted. Over max_length the response's tail goes, then the prompt's head."""
    rows, label_rows = [], []
    for prompt, response in zip(prompts, responses, strict=True):
        prompt_part, response_part = prompt_ids(tokenizer, prompt), response_ids(tokenizer, response)
        if max_length is not None and len(prompt_part) + len(response_part) > max_length:
            response_part = response_part[: max(1, max_length - len(prompt_part))]
            prompt_part = truncate_left(prompt_part, max_length - len(response_part),
                                        keep_first=prompt_part[:1] == [tokenizer.bos_token_id])
        rows.append(prompt_part + response_part)
        label_rows.append([IGNORE_INDEX] * len(prompt_part) + response_part)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = _pad_right(rows, pad_id)
    attention_mask = _pad_right([[1] * len(r) for r in rows], 0)
    labels = _pad_right(label_rows, IGNORE_INDEX)
    return input_ids, attention_mask, labels


@torch.inference_mode()
def response_logps(model, tokenizer, prompts: Sequence[Prompt], responses: Sequence[str]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> logps (B,) SUM of log pi(y_t | x, y_<t) over response tokens (float32+), and
    n_tokens (B,) the number of response tokens counted (eos included)."""
    input_ids, attention_mask, labels = response_batch(tokenizer, prompts, responses, max_length=context_window(model))
    device = _device(model)
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
    shifted_labels = labels[:, 1:].to(device)  # logits at t predict the token at t+1
    logps = sequence_logps(logits[:, :-1], shifted_labels).cpu()
    return logps, (shifted_labels != IGNORE_INDEX).sum(-1).cpu()


def _pairs_flat(items: Sequence[JudgeItem]) -> tuple[list, list]:
    """B items -> 2B (prompt, response) rows: all a's first, then all b's."""
    prompts = [it.prompt for it in items] * 2
    responses = [it.response_a for it in items] + [it.response_b for it in items]
    return prompts, responses


class ImplicitRewardJudge:
    """r(y) = beta * [logps_dpo(y) - logps_sft(y)], the reward DPO implicitly trained into the teacher
    (sums over response tokens given the rendered prompt); P(a ≻ b) = sigmoid(r_a - r_b).
    Order-free, so one pass per pair (order "ab"). beta should be the teacher DPO stage's beta."""

    def __init__(self, dpo_model, sft_model, tokenizer, beta: float = 0.01, *, sft_tokenizer=None):
        """`sft_tokenizer`: pi_sft's own, when loaded apart; both models then score the same ids only if
        it is `tokenizer` (equal vocabulary sizes alone do not say so)."""
        if sft_tokenizer is not None:
            from ml.modeling import check_same_tokenizer

            check_same_tokenizer(tokenizer, sft_tokenizer, method="the implicit-reward judge")
        if dpo_model.config.vocab_size != sft_model.config.vocab_size:
            raise ValueError(f"DPO and SFT teachers have different vocabularies ({dpo_model.config.vocab_size} "
                             f"vs {sft_model.config.vocab_size}): the implicit reward needs one tokenizer")
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.dpo_model, self.sft_model = dpo_model.eval(), sft_model.eval()
        self.tokenizer, self.beta = tokenizer, beta
        self.identity = (f"implicit-reward(dpo={model_source(dpo_model)}, sft={model_source(sft_model)}, "
                         f"beta={beta})")

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        prompts, responses = _pairs_flat(items)
        dpo_logps, _ = response_logps(self.dpo_model, self.tokenizer, prompts, responses)  # (2B,)
        sft_logps, _ = response_logps(self.sft_model, self.tokenizer, prompts, responses)  # (2B,)
        rewards = self.beta * (dpo_logps - sft_logps)  # (2B,)
        reward_a, reward_b = rewards.double().chunk(2)  # (B,) each
        p_a_over_b = torch.sigmoid(reward_a - reward_b)
        return [Verdict(float(p), self.identity, "ab", {"reward_a": float(ra), "reward_b": float(rb)})
                for p, ra, rb in zip(p_a_over_b, reward_a, reward_b)]


class LikelihoodJudge:
    """Length-normalized log-likelihood: s(y) = logps_teacher(y) / |y| (mean log-prob per response
    token, eos included), P(a ≻ b) = sigmoid(s_a - s_b). Order-free (order "ab"). A weak judge —
    it rewards what the teacher would have said, not what is right — but needs only one model."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.identity = f"likelihood(teacher={model_source(model)})"

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        prompts, responses = _pairs_flat(items)
        logps, n_tokens = response_logps(self.model, self.tokenizer, prompts, responses)  # (2B,)
        mean_logps = logps.double() / n_tokens.clamp(min=1)
        score_a, score_b = mean_logps.chunk(2)  # (B,) each
        p_a_over_b = torch.sigmoid(score_a - score_b)
        return [Verdict(float(p), self.identity, "ab", {"mean_logp_a": float(a), "mean_logp_b": float(b)})
                for p, a, b in zip(p_a_over_b, score_a, score_b)]


def _prompt_text(prompt: Prompt) -> str:
    """A chat prompt becomes 'role: content' lines so it fits inside the judge's own instruction."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


class JudgeFormatError(ValueError):
    """The generative judge does not answer in the asked format (its answer mass is too low)."""


class GenerativeJudge:
    """Ask an instruction-tuned teacher which response is better and read, at the first answer
    position, the logits of the two answer tokens (default "A" = the first shown, "B" = the second).
    The answer ids are the tokens the model would write FIRST in its turn (the template's first
    assistant token for "A"; for SentencePiece or GPT-2 vocabularies that is not the id of " A").
    Each pair is shown in BOTH orders; P(a ≻ b) averages P(first) of order ab with P(second) of
    order ba, which cancels a pure position bias. details: p_ab, p_ba (P(a ≻ b) from each order)
    and answer_mass_ab/_ba (softmax mass on the two answer tokens: low = the judge ignores the format).
    A verdict whose mean answer mass is below `warn_below` is marked (details "low_answer_mass") and
    logged; a batch whose mean mass is below `refuse_below` raises JudgeFormatError instead.
    template: a str.format pattern with {prompt}, {first}, {second}, {first_label}, {second_label}."""

    def __init__(self, model, tokenizer, template: str = DEFAULT_JUDGE_TEMPLATE,
                 answer_tokens: tuple[str, str] = ("A", "B"), *, warn_below: float = 0.5,
                 refuse_below: float | None = None):
        check_judge_template(template, answer_tokens)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.template, self.answer_tokens = template, tuple(answer_tokens)
        self.answer_ids = [self._first_answer_token(t) for t in answer_tokens]
        if self.answer_ids[0] == self.answer_ids[1]:
            raise ValueError(f"answer tokens {answer_tokens} map to the same token id")
        self.warn_below, self.refuse_below = warn_below, refuse_below
        self.identity = f"generative(teacher={model_source(model)}, answers={'/'.join(answer_tokens)})"

    def _first_answer_token(self, text: str) -> int:
        """The id the model writes when its answer begins with `text`: tokenize the judge turn opener
        followed by `text` and take what follows the opener; `text` must be that one token."""
        opener = prompt_ids(self.tokenizer, self._judge_text("x", "y", "z"))
        with_answer = self.tokenizer(render_prompt(self.tokenizer, self._judge_text("x", "y", "z")) + text,
                                     add_special_tokens=False)["input_ids"]
        if opener[:1] == [self.tokenizer.bos_token_id] and with_answer[:1] != opener[:1]:
            with_answer = opener[:1] + with_answer  # prompt_ids added the BOS the tokenizer expects
        if with_answer[: len(opener)] == opener and len(with_answer) == len(opener) + 1:
            return with_answer[-1]
        alone = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(alone) == 1 and with_answer[: len(opener)] == opener[: len(with_answer)]:
            return alone[0]
        raise ValueError(f"answer token {text!r} is {len(with_answer) - len(opener)} tokens where the judge "
                         f"starts its answer (alone: {len(alone)}) for this tokenizer; it must be one")

    def _judge_text(self, prompt: Prompt, first: str, second: str) -> str:
        return self.template.format(prompt=_prompt_text(prompt), first=first, second=second,
                                    first_label=self.answer_tokens[0], second_label=self.answer_tokens[1])

    def _clip(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens]) + " …"

    def _judge_ids(self, prompt: Prompt, first: str, second: str) -> list[int]:
        """The judge's input ids; over the model's window each response keeps its head, in equal shares."""
        ids = prompt_ids(self.tokenizer, self._judge_text(prompt, first, second))
        window = context_window(self.model)
        if window is None or len(ids) <= window:
            return ids
        room = window - len(prompt_ids(self.tokenizer, self._judge_text(prompt, "", ""))) - 8
        if room < 2:
            raise ValueError(f"the judge prompt alone exceeds the model's window of {window} tokens")
        ids = prompt_ids(self.tokenizer, self._judge_text(prompt, self._clip(first, room // 2),
                                                          self._clip(second, room // 2)))
        return truncate_left(ids, window, keep_first=ids[:1] == [self.tokenizer.bos_token_id])

    @torch.inference_mode()
    def _answer_logits(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """rows (N,) token ids -> answer-token logits (N,2) at the next position, and their softmax mass (N,)."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Right padding keeps every row's positions 0..len-1, so the padded batch scores exactly
        # like each row alone; the next-token logits sit at each row's own last position.
        input_ids = _pad_right(rows, pad_id)
        attention_mask = _pad_right([[1] * len(r) for r in rows], 0)
        device = _device(self.model)
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        last = torch.tensor([len(r) - 1 for r in rows], device=device)
        next_logits = logits[torch.arange(len(rows), device=device), last].double().cpu()  # (N,V)
        answer_logits = next_logits[:, self.answer_ids]  # (N,2)
        mass = torch.softmax(next_logits, dim=-1)[:, self.answer_ids].sum(-1)  # (N,)
        return answer_logits, mass

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        rows = [self._judge_ids(it.prompt, it.response_a, it.response_b) for it in items]
        rows += [self._judge_ids(it.prompt, it.response_b, it.response_a) for it in items]
        answer_logits, mass = self._answer_logits(rows)  # (2B,2), (2B,)
        check_answer_mass(mass, identity=self.identity, labels=self.answer_tokens, refuse_below=self.refuse_below)
        return answer_verdicts(answer_logits, mass, identity=self.identity, warn_below=self.warn_below)


def check_answer_mass(mass: torch.Tensor, *, identity: str, labels, refuse_below: float | None) -> None:
    """Raises JudgeFormatError when the batch's mean answer mass (N,) is below refuse_below."""
    mean = float(mass.mean())
    if refuse_below is not None and mean < refuse_below:
        raise JudgeFormatError(f"the judge puts {mean:.3f} of its probability on the answer tokens "
                               f"{tuple(labels)} (refusing below {refuse_below}): it does not answer "
                               "in this format, so its verdicts would be noise. Try other answer tokens or template.")


def answer_verdicts(answer_scores: torch.Tensor, mass: torch.Tensor, *, identity: str, warn_below: float
                    ) -> list[Verdict]:
    """The generative judge's verdicts, shared by the in-worker and the endpoint judge. answer_scores
    (2B,2): the two labels' logits (or log-probs: only their difference counts) for the B items shown
    in order ab, then the same B in order ba; mass (2B,): softmax mass on the two labels.
    P(first shown is better) = sigmoid(s_first - s_second), the two labels renormalised; P(a ≻ b)
    averages order ab's P(first) with order ba's P(second). A verdict whose mean answer mass over
    its two orders is below `warn_below` is marked "low_answer_mass" (the judge ignores the format
    there, so that verdict may be noise) and the batch is logged."""
    answer_scores, mass = answer_scores.double(), mass.double()
    p_first = torch.sigmoid(answer_scores[:, 0] - answer_scores[:, 1])  # (2B,) P(first shown is better)
    p_first_ab, p_first_ba = p_first.chunk(2)
    p_ab, p_ba = p_first_ab, 1.0 - p_first_ba  # both P(a ≻ b)
    mass_ab, mass_ba = mass.chunk(2)
    low = ((mass_ab + mass_ba) / 2 < warn_below).tolist()  # (B,)
    if any(low):
        log.warning("generative judge %s: %d of %d verdicts with answer mass < %.2f (batch mean %.3f); they may be "
                    "noise", identity, sum(low), len(low), warn_below, float(mass.mean()))
    return [Verdict(float((pab + pba) / 2), identity, "both",
                    {"p_ab": float(pab), "p_ba": float(pba),
                     "answer_mass_ab": float(mab), "answer_mass_ba": float(mba),
                     **({"low_answer_mass": True} if is_low else {})})
            for pab, pba, mab, mba, is_low in zip(p_ab, p_ba, mass_ab, mass_ba, low)]


def judge_pairs(judge, items: Sequence[JudgeItem], *, batch_size: int = 8,
                on_progress: Optional[Callable[[int, int], None]] = None) -> list[Verdict]:
    """Run `judge` over `items` in batches; on_progress(done, total) after each batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    verdicts: list[Verdict] = []
    for start in range(0, len(items), batch_size):
        verdicts += judge.judge_batch(items[start:start + batch_size])
        if on_progress:
            on_progress(len(verdicts), len(items))
    return verdicts


def verdict_outcome(verdict: Verdict) -> float:
    """THE verdict rule, for judge jobs and evaluations alike (docs/judging.md): a verdict is a game
    result for a from its one probability P(a ≻ b), which for the generative judge is already the
    average over both presentation orders: 1 (a wins) when P > 0.5, 0 when P < 0.5, 0.5 (tie) when
    P = 0.5. Orders that disagree are not a tie by themselves: the more confident order decides."""
    p = verdict.p_a_over_b
    return 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5
