"""ml.checkpoint_eval on tiny random-init models: the teacher measured against its own answers is
maximally close (KL 0, agreement 1) and a different student is not; oracle and win rate come with
bootstrap intervals; a stop request ends the evaluation without a result."""
import pytest

from ml.checkpoint_eval import HeldOutItem, estimate, evaluate_checkpoint, holdout_sample
from ml.demo.tasks import generate_tasks, oracle_score
from ml.generation import generate
from ml.judges import LikelihoodJudge
from ml.modeling import load_model


@pytest.fixture(scope="module")
def models(tiny_teacher_dir, tiny_student_dir):
    return load_model(str(tiny_teacher_dir)), load_model(str(tiny_student_dir))


@pytest.fixture(scope="module")
def sample(models):
    teacher = models[0]
    tasks = generate_tasks(8, seed=3)
    answers = [o[0].text for o in generate(teacher.model, teacher.tokenizer, [t.prompt for t in tasks], k=1,
                                           temperature=0.0, max_new_tokens=8)]
    return [HeldOutItem(t.prompt, a, score=lambda r, t=t: float(oracle_score(t, r)), family=t.family)
            for t, a in zip(tasks, answers)]


def test_teacher_against_its_own_answers_is_maximally_close(models, sample):
    teacher = models[0]
    result = evaluate_checkpoint(teacher.model, teacher.model, teacher.tokenizer, sample, step=0, max_new_tokens=8)
    assert result.teacher_agreement.value == 1.0
    assert result.teacher_kl == pytest.approx(0.0, abs=1e-9)
    assert result.n == len(sample) and len(result.answers) == len(sample)


def test_a_different_student_is_further_from_the_teacher(models, sample):
    teacher, student = models
    result = evaluate_checkpoint(student.model, teacher.model, teacher.tokenizer, sample, step=5, max_new_tokens=8,
                                 judge=LikelihoodJudge(teacher.model, teacher.tokenizer))
    assert result.teacher_kl > 1e-4  # the teacher against itself is exactly 0 (test above)
    assert result.step == 5
    # random-init models answer the demo tasks wrongly; the interval brackets the estimate
    assert result.oracle is not None and result.oracle.low <= result.oracle.value <= result.oracle.high
    assert set(result.oracle_by_family) == {item.family for item in sample}
    assert result.win_rate is not None and 0.0 <= result.win_rate.low <= result.win_rate.value <= result.win_rate.high <= 1.0
    assert result.judge.startswith("likelihood")


def test_stop_request_returns_no_result(models, sample):
    teacher = models[0]
    assert evaluate_checkpoint(teacher.model, teacher.model, teacher.tokenizer, sample, step=1,
                               should_stop=lambda: True) is None


def test_holdout_sample_is_fixed_and_bounded():
    items = list(range(100))
    first, again = holdout_sample(items, 10, seed=4), holdout_sample(items, 10, seed=4)
    assert first == again and len(first) == 10 and first == sorted(first)
    assert holdout_sample(items[:3], 10) == [0, 1, 2]


def test_estimate_interval():
    result = estimate([1.0] * 30 + [0.0] * 10)
    assert result.value == 0.75 and result.low < 0.75 < result.high and result.n == 40
    assert estimate([]) is None


def test_no_kl_across_tokenizers_even_with_equal_vocabulary_sizes(models, sample, bpe_tokenizer):
    # a demo-tokenizer teacher and a BPE student, both sized to one vocabulary: the ids name other
    # tokens on each side, so no KL (the old check compared vocab_size alone)
    from ml.demo.configs import build_model, llama_config

    size = max(len(bpe_tokenizer), len(models[0].tokenizer))
    student_config, teacher_config = llama_config(bpe_tokenizer, "tiny-student"), llama_config(models[0].tokenizer,
                                                                                               "tiny-teacher")
    student_config.vocab_size = teacher_config.vocab_size = size
    student, teacher = build_model(student_config, seed=2).eval(), build_model(teacher_config, seed=1).eval()
    result = evaluate_checkpoint(student, teacher, bpe_tokenizer, sample[:2], step=1, max_new_tokens=4,
                                 teacher_tokenizer=models[0].tokenizer)
    assert result.teacher_kl is None and result.n == 2
