"""The pure readers of server answers, on hand-written fragments shaped like vLLM's (field names as
its OpenAI server writes them; the protocol itself is exercised against the real server in
test_protocol.py): chat choices -> GenerationOutput, the judge's answer probability from
top_logprobs or text, and prompt_logprobs -> DCKD's top-K rows. Expected values worked by hand."""
import math

import pytest
import torch

from ml.endpoints.generation import output_from_choice
from ml.endpoints.judge import EndpointJudge, label_probability, text_answer
from ml.endpoints.signals import topk_from_prompt_logprobs
from ml.endpoints.spec import EndpointSpec

LN = math.log


def test_chat_choice_with_token_ids_and_top_logprobs():
    choice = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "12"},
              "logprobs": {"content": [
                  {"token": "token_id:7", "logprob": LN(0.5), "top_logprobs": [{"token": "token_id:7", "logprob": LN(0.5)},
                                                                              {"token": "token_id:9", "logprob": LN(0.25)}]},
                  {"token": "token_id:8", "logprob": LN(0.125), "top_logprobs": [{"token": "token_id:3", "logprob": LN(0.75)},
                                                                                {"token": "token_id:8", "logprob": LN(0.125)}]}]}}
    out = output_from_choice(choice, top_logprobs=1)
    assert (out.text, out.token_ids, out.finish_reason) == ("12", [7, 8], "length")
    assert out.token_logps == pytest.approx([LN(0.5), LN(0.125)])
    assert out.top_logprobs == [[(7, pytest.approx(LN(0.5)))], [(3, pytest.approx(LN(0.75)))]]


def test_black_box_choice_has_text_but_no_ids():
    choice = {"finish_reason": "stop", "message": {"content": "hi"},
              "logprobs": {"content": [{"token": "hi", "logprob": -0.1, "top_logprobs": []}]}}
    out = output_from_choice(choice, top_logprobs=0)
    assert (out.text, out.token_ids, out.token_logps, out.top_logprobs) == ("hi", [], [-0.1], None)
    assert output_from_choice({"message": {"content": "x"}}, top_logprobs=0).token_logps == []


def test_label_probability_sums_spellings_of_a_label():
    # first position has no label; second: "A" 0.3 + " A" 0.1 = 0.4, "B" 0.2 -> P(first) = 0.4 / 0.6
    content = [{"token": "Response", "logprob": LN(0.9), "top_logprobs": [{"token": "Response", "logprob": LN(0.9)}]},
               {"token": "A", "logprob": LN(0.3), "top_logprobs": [
                   {"token": "A", "logprob": LN(0.3)}, {"token": "B", "logprob": LN(0.2)},
                   {"token": " A", "logprob": LN(0.1)}, {"token": "C", "logprob": LN(0.05)}]}]
    p, mass, source = label_probability(content, ("A", "B"))
    assert (p, mass, source) == (pytest.approx(2 / 3), pytest.approx(0.6), "top_logprobs")


def test_label_probability_bounds_a_missing_label():
    # only "B" (0.6) listed; "A" is at most the least likely listed token (0.1): P(first) = 0.1 / 0.7
    content = [{"token": "B", "logprob": LN(0.6), "top_logprobs": [
        {"token": "B", "logprob": LN(0.6)}, {"token": "x", "logprob": LN(0.3)}, {"token": "y", "logprob": LN(0.1)}]}]
    p, mass, source = label_probability(content, ("A", "B"))
    assert (p, mass, source) == (pytest.approx(1 / 7), pytest.approx(0.6), "top_logprobs_bound")
    assert label_probability([{"token": "no", "logprob": -1.0, "top_logprobs": []}], ("A", "B")) is None


@pytest.mark.parametrize("text, expected", [("A", 1.0), ("Response B is better.", 0.0), ("**B**", 0.0),
                                            ("Apple", None), ("", None), ("A or B: A", 1.0)])
def test_text_answer_reads_the_first_standalone_label(text, expected):
    assert text_answer(text, ("A", "B")) == expected


class _Answers:
    """Stands in for an EndpointClient at the judge's seam (its `chat` and `map`): answers by the
    order a pair is shown in. No HTTP: the judge's arithmetic is what is tested here."""

    spec = EndpointSpec("http://127.0.0.1:9/v1", "judge")
    base_url = spec.base_url

    def __init__(self, answers):
        self.answers = answers

    def chat(self, body):
        first = body["messages"][0]["content"].split("Response A: ")[1].split("\n")[0]
        return {"choices": [self.answers[first]]}

    def map(self, fn, items, on_result=None, should_stop=None):
        return [fn(item) for item in items]


def _choice(text, probs=None):
    content = None if probs is None else [{"token": text, "logprob": 0.0, "top_logprobs": [
        {"token": label, "logprob": LN(p)} for label, p in probs.items()]}]
    return {"message": {"content": text}, "logprobs": None if content is None else {"content": content}}


def test_judge_averages_both_orders_from_logprobs():
    from ml.judges import JudgeItem
    # shown a first: P(A) = 0.9/(0.9+0.1) = 0.9; shown b first: P(first=b) = 0.4 -> P(a>b) = 0.6; mean 0.75
    client = _Answers({"a": _choice("A", {"A": 0.9, "B": 0.1}), "b": _choice("B", {"A": 0.4, "B": 0.6})})
    (verdict,) = EndpointJudge(client).judge_batch([JudgeItem("q", "a", "b")])
    assert verdict.order == "both" and verdict.p_a_over_b == pytest.approx(0.75)
    assert (verdict.details["p_ab"], verdict.details["p_ba"]) == (pytest.approx(0.9), pytest.approx(0.6))
    assert "unparseable" not in verdict.details


def test_judge_unparseable_orders_are_marked_never_a_silent_half():
    from ml.judges import JudgeItem
    one = _Answers({"a": _choice("I think B"), "b": _choice("both are fine")})
    (verdict,) = EndpointJudge(one, top_logprobs=None).judge_batch([JudgeItem("q", "a", "b")])
    assert (verdict.order, verdict.p_a_over_b, verdict.details["unparseable_orders"]) == ("ab", 0.0, ["ba"])
    none = _Answers({"a": _choice("hmm"), "b": _choice("x" * 300)})
    (verdict,) = EndpointJudge(none, top_logprobs=None).judge_batch([JudgeItem("q", "a", "b")])
    assert verdict.details["unparseable"] is True and verdict.details["raw"].startswith("ab: hmm | ba: xxx")
    assert len(verdict.details["raw"]) == 200


def _entry(*rows):
    return {str(t): {"logprob": lp, "rank": r, "decoded_token": "?"} for t, lp, r in rows}


def test_topk_rows_by_rank_and_the_scored_token_dropped():
    # prompt of 2 ids then response [5, 6]; K = 2. Position 2 predicts 5: top (4: -0.5, 5: -1.0), 5 is in.
    # Position 3 predicts 6: top (1: -0.2, 2: -2.0); 6 has rank 7 and is dropped.
    positions = [None, _entry((9, -0.1, 1), (3, -2.5, 2)), _entry((5, -1.0, 2), (4, -0.5, 1)),
                 _entry((2, -2.0, 2), (6, -4.0, 7), (1, -0.2, 1))]
    ids, logps = topk_from_prompt_logprobs(positions, 2, 2, top_k=2)
    assert ids.tolist() == [[4, 5], [1, 2]] and ids.dtype == torch.int64
    assert torch.allclose(logps, torch.tensor([[-0.5, -1.0], [-0.2, -2.0]]))
    with pytest.raises(ValueError, match="max-logprobs"):
        topk_from_prompt_logprobs(positions, 2, 2, top_k=3)


def test_judge_asks_no_more_alternatives_than_the_probe_found():
    client = _Answers({})
    assert EndpointJudge(client, capability={"top_logprobs_max": 5}).top_logprobs == 5
    assert EndpointJudge(client, capability={"logprobs": False, "top_logprobs_max": 0}).top_logprobs is None
    assert EndpointJudge(client, top_logprobs=50, capability={"top_logprobs_max": 50}).top_logprobs == 50
