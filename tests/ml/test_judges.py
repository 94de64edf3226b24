"""Tests for ml/judges.py: hand-checkable verdicts on tiny models and on a scripted judge model
whose answer logits we set ourselves."""
import math

import pytest
import torch

from ml.judges import (GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, Verdict,
                       judge_pairs, response_batch, verdict_outcome)
from ml.losses.common import IGNORE_INDEX
from ml.modeling import load_model, render_prompt

ITEMS = [
    JudgeItem("What is 2 plus 3?", "5", "6"),
    JudgeItem("Sort the words: dog cat apple", "apple cat dog", "dog cat"),
    JudgeItem("How many letters in sun?", "3", "3"),
]


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return load_model(str(tiny_teacher_dir), device="cpu")


@pytest.fixture(scope="module")
def student(tiny_student_dir):
    return load_model(str(tiny_student_dir), device="cpu")


def manual_logps(model, tokenizer, prompt, response) -> tuple[float, int]:
    """Sum of response-token log-probs (eos included), one unpadded row, computed longhand."""
    prompt_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + response_ids])).logits[0].double()
    logps = torch.log_softmax(logits, dim=-1)
    total = sum(float(logps[len(prompt_ids) - 1 + i, token]) for i, token in enumerate(response_ids))
    return total, len(response_ids)


def test_response_batch_masks_prompt_and_padding(demo_tokenizer):
    input_ids, attention_mask, labels = response_batch(demo_tokenizer, ["What is 1 plus 1?", "Sort the words: cat"],
                                                       ["2", "cat"])
    for row, (prompt, response) in enumerate([("What is 1 plus 1?", "2"), ("Sort the words: cat", "cat")]):
        n_prompt = len(demo_tokenizer(render_prompt(demo_tokenizer, prompt), add_special_tokens=False)["input_ids"])
        response_ids = demo_tokenizer(response, add_special_tokens=False)["input_ids"] + [demo_tokenizer.eos_token_id]
        n = n_prompt + len(response_ids)
        assert labels[row, :n_prompt].eq(IGNORE_INDEX).all()
        assert labels[row, n_prompt:n].tolist() == response_ids
        assert labels[row, n:].eq(IGNORE_INDEX).all() and attention_mask[row, n:].eq(0).all()
        assert attention_mask[row, :n].eq(1).all()  # right padding: real tokens first


def test_implicit_reward_with_dpo_equal_to_sft_is_a_coin_flip(teacher):
    judge = ImplicitRewardJudge(teacher.model, teacher.model, teacher.tokenizer, beta=0.5)
    verdicts = judge_pairs(judge, ITEMS)
    assert [v.p_a_over_b for v in verdicts] == [0.5, 0.5, 0.5]  # r = beta * 0 for every response
    assert all(v.details["reward_a"] == 0.0 for v in verdicts)
    assert str(teacher.source) in verdicts[0].judge and verdicts[0].order == "ab"


def test_implicit_reward_refuses_two_tokenizers(teacher, bpe_tokenizer):
    from ml.modeling import TokenizerMismatchError

    with pytest.raises(TokenizerMismatchError, match="implicit-reward judge"):  # same model, same vocab size
        ImplicitRewardJudge(teacher.model, teacher.model, teacher.tokenizer, sft_tokenizer=bpe_tokenizer)


def test_implicit_reward_matches_longhand_and_swapping_gives_one_minus_p(teacher, student):
    # Stand-ins: the tiny teacher plays pi_dpo and the tiny student pi_sft (same tokenizer).
    judge = ImplicitRewardJudge(teacher.model, student.model, teacher.tokenizer, beta=0.1)
    item = ITEMS[1]
    verdict = judge.judge_batch([item])[0]

    def reward(response):
        dpo, _ = manual_logps(teacher.model, teacher.tokenizer, item.prompt, response)
        sft, _ = manual_logps(student.model, teacher.tokenizer, item.prompt, response)
        return 0.1 * (dpo - sft)

    expected = 1 / (1 + math.exp(-(reward(item.response_a) - reward(item.response_b))))
    assert verdict.p_a_over_b == pytest.approx(expected, abs=1e-5)
    swapped = judge.judge_batch([JudgeItem(item.prompt, item.response_b, item.response_a)])[0]
    assert swapped.p_a_over_b == pytest.approx(1 - verdict.p_a_over_b, abs=1e-9)


def test_judge_pairs_batches_do_not_change_verdicts(teacher, student):
    judge = ImplicitRewardJudge(teacher.model, student.model, teacher.tokenizer, beta=1.0)
    progress = []
    batched = judge_pairs(judge, ITEMS, batch_size=2, on_progress=lambda done, total: progress.append((done, total)))
    one_by_one = judge_pairs(judge, ITEMS, batch_size=1)
    assert progress == [(2, 3), (3, 3)]
    assert [v.p_a_over_b for v in batched] == pytest.approx([v.p_a_over_b for v in one_by_one], abs=1e-6)
    assert batched[2].p_a_over_b == pytest.approx(0.5)  # identical responses


def test_likelihood_judge_is_sigmoid_of_mean_logp_difference(teacher):
    judge = LikelihoodJudge(teacher.model, teacher.tokenizer)
    item = ITEMS[1]
    verdict = judge.judge_batch([item])[0]
    logp_a, n_a = manual_logps(teacher.model, teacher.tokenizer, item.prompt, item.response_a)
    logp_b, n_b = manual_logps(teacher.model, teacher.tokenizer, item.prompt, item.response_b)
    expected = 1 / (1 + math.exp(-(logp_a / n_a - logp_b / n_b)))  # n_a = 4, n_b = 3 (eos counted)
    assert (n_a, n_b) == (4, 3)
    assert verdict.p_a_over_b == pytest.approx(expected, abs=1e-5)
    swapped = judge.judge_batch([JudgeItem(item.prompt, item.response_b, item.response_a)])[0]
    assert swapped.p_a_over_b == pytest.approx(1 - verdict.p_a_over_b, abs=1e-9)


def test_generative_judge_cancels_pure_position_bias(teacher):
    # Every logit 0 except "A" at ln 3: P(first) = 3/4 whatever is shown, so P(a > b) is 3/4 in
    # order ab, 1/4 in order ba, and their average is exactly 1/2. Mass on {A, B} = 4 / (V + 2).
    tokenizer = teacher.tokenizer
    id_a = tokenizer("A", add_special_tokens=False)["input_ids"][0]
    bias = torch.zeros(teacher.model.config.vocab_size)
    bias[id_a] = math.log(3)
    handle = teacher.model.lm_head.register_forward_hook(lambda module, inputs, out: torch.zeros_like(out) + bias)
    try:
        verdict = GenerativeJudge(teacher.model, tokenizer).judge_batch(ITEMS[:1])[0]
    finally:
        handle.remove()
    assert verdict.details["p_ab"] == pytest.approx(0.75)
    assert verdict.details["p_ba"] == pytest.approx(0.25)
    assert verdict.p_a_over_b == pytest.approx(0.5) and verdict.order == "both"
    assert verdict.details["answer_mass_ab"] == pytest.approx(4 / (teacher.model.config.vocab_size + 2))
    assert verdict_outcome(verdict) == 0.5  # averaged probability exactly 1/2: a tie


class ScriptedJudgeModel(torch.nn.Module):
    """Prefers the response holding `good_id` by odds 9:1, plus a position bias of odds 2:1 for "A"."""

    def __init__(self, vocab_size, good_id, bad_id, id_a, id_b):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the judge a device to read
        self.vocab_size, self.good_id, self.bad_id, self.id_a, self.id_b = vocab_size, good_id, bad_id, id_a, id_b

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        for row, ids in enumerate(input_ids.tolist()):
            good_first = ids.index(self.good_id) < ids.index(self.bad_id)
            logits[row, :, self.id_a if good_first else self.id_b] += math.log(9)
            logits[row, :, self.id_a] += math.log(2)
        return type("Output", (), {"logits": logits})


def test_generative_judge_averages_both_orders_of_a_scripted_model(demo_tokenizer):
    ids = {w: demo_tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("cat", "dog", "A", "B")}
    model = ScriptedJudgeModel(len(demo_tokenizer), ids["cat"], ids["dog"], ids["A"], ids["B"])
    judge = GenerativeJudge(model, demo_tokenizer)
    # Order ab shows cat first: odds 9*2 -> 18/19. Order ba shows dog first: P(first) = 2/11,
    # so P(cat > dog) = 9/11. Average (18/19 + 9/11) / 2.
    good_first, good_second = judge_pairs(judge, [JudgeItem("Name a pet.", "cat", "dog"),
                                                  JudgeItem("Name a pet.", "dog", "cat")])
    vocab_size = len(demo_tokenizer)
    # Softmax mass on {A, B}: order ab has exp-logits 18 and 1 among V - 2 ones -> 19 / (V + 17);
    # order ba has 2 and 9 -> 11 / (V + 9).
    details = dict(good_first.details)
    assert details.pop("low_answer_mass") is True  # mass 0.055 on a random vocabulary: flagged
    assert details == pytest.approx({"p_ab": 18 / 19, "p_ba": 9 / 11,
                                                "answer_mass_ab": 19 / (vocab_size + 17),
                                                "answer_mass_ba": 11 / (vocab_size + 9)})
    assert good_first.p_a_over_b == pytest.approx((18 / 19 + 9 / 11) / 2)
    assert good_second.p_a_over_b == pytest.approx(1 - good_first.p_a_over_b)
    assert (verdict_outcome(good_first), verdict_outcome(good_second)) == (1.0, 0.0)


def test_generative_judge_refuses_bad_templates_and_answer_tokens(demo_tokenizer, teacher):
    with pytest.raises(ValueError, match="must be one"):
        GenerativeJudge(teacher.model, demo_tokenizer, answer_tokens=("cat dog", "B"))
    with pytest.raises(ValueError, match="both responses"):
        GenerativeJudge(teacher.model, demo_tokenizer, template="{prompt} {first}")
    with pytest.raises(ValueError, match="allowed fields"):
        GenerativeJudge(teacher.model, demo_tokenizer, template="{prompt} {first} {second} {third}")


def test_verdict_outcome_for_single_order_judges():
    assert [verdict_outcome(Verdict(p, "j", "ab")) for p in (0.9, 0.5, 0.2)] == [1.0, 0.5, 0.0]


def test_one_verdict_rule_the_averaged_probability_decides():
    """B19: orders that disagree (0.9 in order ab, 0.4 in order ba) average to 0.65, and that one
    probability decides for judge jobs and evaluations alike: a wins (it used to be a tie here)."""
    disagree = Verdict(0.65, "generative", "both", {"p_ab": 0.9, "p_ba": 0.4})
    assert verdict_outcome(disagree) == 1.0
    assert verdict_outcome(Verdict(0.35, "generative", "both", {"p_ab": 0.1, "p_ba": 0.6})) == 0.0
    assert verdict_outcome(Verdict(0.5, "generative", "both", {"p_ab": 0.7, "p_ba": 0.3})) == 0.5


def test_generative_judge_warns_and_refuses_on_low_answer_mass(teacher, caplog):
    """A random tiny model spreads its mass over the whole vocabulary (about 2/V on A and B): by
    default the verdicts are flagged and a warning logged; with refuse_below it refuses outright."""
    from ml.judges import JudgeFormatError

    with caplog.at_level("WARNING", logger="ml.judges"):
        verdict = GenerativeJudge(teacher.model, teacher.tokenizer).judge_batch(ITEMS[:1])[0]
    assert verdict.details["low_answer_mass"] is True and "answer mass" in caplog.text
    with pytest.raises(JudgeFormatError, match="does not answer in this format"):
        GenerativeJudge(teacher.model, teacher.tokenizer, refuse_below=0.2).judge_batch(ITEMS[:1])
    confident = GenerativeJudge(teacher.model, teacher.tokenizer, warn_below=0.0).judge_batch(ITEMS[:1])[0]
    assert "low_answer_mass" not in confident.details


def test_generative_judge_reads_the_token_the_model_writes_first(demo_tokenizer, teacher):
    """The answer id is the token that follows the judge's turn opener when the answer is "A": for
    the demo vocabulary that is the id of "A"; an answer that is two tokens there is refused."""
    judge = GenerativeJudge(teacher.model, demo_tokenizer)
    opener = __import__("ml.chat", fromlist=["prompt_ids"]).prompt_ids(demo_tokenizer, judge._judge_text("x", "y", "z"))
    written = demo_tokenizer(render_prompt(demo_tokenizer, judge._judge_text("x", "y", "z")) + "A",
                             add_special_tokens=False)["input_ids"]
    assert judge.answer_ids[0] == written[len(opener)] == demo_tokenizer("A", add_special_tokens=False)["input_ids"][0]
    with pytest.raises(ValueError, match="must be one"):
        GenerativeJudge(teacher.model, demo_tokenizer, answer_tokens=("AB cat", "B"))


def test_judge_inputs_are_cut_to_the_models_window(tiny_teacher_dir):
    """With a 120-position window, long responses are clipped so every judge input fits, and the
    likelihood judge's rows fit too; verdicts still come out."""
    loaded = load_model(str(tiny_teacher_dir), device="cpu")
    loaded.model.config.max_position_embeddings = 120
    long = " ".join(["apple cat dog"] * 40)
    judge = GenerativeJudge(loaded.model, loaded.tokenizer)
    rows = [judge._judge_ids("Sort the words: dog cat apple", long, long + " sun")]
    assert len(rows[0]) <= 120
    assert 0.0 <= judge.judge_batch([JudgeItem("Sort the words: dog cat apple", long, long)])[0].p_a_over_b <= 1.0
    input_ids, _, _ = response_batch(loaded.tokenizer, ["Sort the words: dog cat apple"], [long], max_length=120)
    assert input_ids.shape[1] == 120
    assert len(LikelihoodJudge(loaded.model, loaded.tokenizer).judge_batch([JudgeItem("Sort", long, "x")])) == 1
