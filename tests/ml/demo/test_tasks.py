"""Demo tasks: generation is seeded and balanced, prompts parse back to their task, the oracle
accepts exactly the answer (modulo case, spaces and a trailing full stop)."""
import pytest

from ml.demo.tasks import (FAMILIES, HELD_OUT_PERCENT, Task, corrupt_tasks, generate_split_tasks, generate_tasks,
                           oracle_score, prompt_content_hash, prompt_split, systematic_error, task_from_prompt)


def test_generation_is_deterministic_and_balanced():
    tasks = generate_tasks(70, seed=5)
    assert tasks == generate_tasks(70, seed=5)
    assert tasks != generate_tasks(70, seed=6)
    assert len(FAMILIES) >= 5
    assert all(sum(t.family == f for t in tasks) == 10 for f in FAMILIES)


def test_every_generated_prompt_parses_back_to_its_task():
    for task in generate_tasks(700, seed=0):
        assert task_from_prompt(task.prompt) == task


@pytest.mark.parametrize(
    "prompt, answer",
    [
        ("What is 7 plus 8?", "15"),
        ("What is 9 minus 4?", "5"),
        ("Which is larger: 3 or 17?", "17"),
        ("Reverse the words: cat tree apple", "apple tree cat"),
        ("Sort the words: river cat orange", "cat orange river"),
        ("How many words: sun dog fish bird", "4"),
        ("How many letters in garden?", "6"),
    ],
)
def test_hand_checked_answers(prompt, answer):
    assert task_from_prompt(prompt).answer == answer
    assert oracle_score(prompt, answer)


def test_oracle_is_lenient_on_form_strict_on_content():
    task = Task("reverse", "Reverse the words: cat dog", "dog cat")
    assert oracle_score(task, "  Dog  cat.\nsomething after")
    assert not oracle_score(task, "cat dog")
    assert not oracle_score(task, "")


def test_oracle_reads_a_chat_rendered_prompt():
    assert oracle_score("<bos><|user|>What is 2 plus 2?<|assistant|>", "4")
    assert not oracle_score("<bos><|user|>What is 2 plus 2?<|assistant|>", "5")


def test_unknown_prompt_is_refused():
    assert task_from_prompt("Tell me a story") is None
    with pytest.raises(ValueError, match="not a demo task"):
        oracle_score("Tell me a story", "Once upon a time")
    with pytest.raises(ValueError, match="unknown task families"):
        generate_tasks(3, seed=0, families=("poetry",))


def test_content_hash_is_the_web_apps_prompt_hash():
    # The demo build writes these hashes for evaluations to compare with Prompt.content_hash.
    from webapp.catalog.services import prompt_content_hash as web_hash

    for prompt in ("What is 2 plus 3?", "  Sort the words: cat dog \n", "Tell me a story"):
        assert prompt_content_hash(prompt) == web_hash(text=prompt)
    assert prompt_content_hash("a") != prompt_content_hash("b")


def test_split_tasks_stay_on_their_side_of_the_content_split():
    train = generate_split_tasks(400, seed=1, split="train")
    held_out = generate_split_tasks(400, seed=2, split="eval")
    assert {prompt_split(t.prompt) for t in train} == {"train"}
    assert {prompt_split(t.prompt) for t in held_out} == {"eval"}
    assert not {t.prompt for t in train} & {t.prompt for t in held_out}
    assert all(sum(t.family == f for t in train) == 400 // len(FAMILIES) + (i < 400 % len(FAMILIES))
               for i, f in enumerate(FAMILIES))
    # about HELD_OUT_PERCENT of all prompts are held out
    many = generate_tasks(5000, seed=3, families=("reverse", "sort"))
    share = sum(prompt_split(t.prompt) == "eval" for t in many) / len(many)
    assert abs(share - HELD_OUT_PERCENT / 100) < 0.03
    with pytest.raises(ValueError, match="split must be"):
        generate_split_tasks(1, seed=0, split="test")


@pytest.mark.parametrize(
    "task, wrong",
    [
        (Task("compare", "Which is larger: 3 or 17?", "17"), "3"),
        (Task("sort", "Sort the words: river cat orange", "cat orange river"), "river orange cat"),
        (Task("count_words", "How many words: sun dog fish bird", "4"), "5"),
    ],
)
def test_systematic_errors_are_wrong_by_a_fixed_rule(task, wrong):
    assert systematic_error(task) == wrong
    assert not oracle_score(task, wrong)
    with pytest.raises(ValueError, match="no systematic error"):
        systematic_error(Task("reverse", "Reverse the words: cat dog", "dog cat"))


def test_corrupt_tasks_changes_only_the_named_families_at_the_rate():
    tasks = generate_tasks(3000, seed=4, families=("compare", "reverse"))
    corrupted = corrupt_tasks(tasks, rate=0.7, families=("compare",), seed=0)
    assert corrupted == corrupt_tasks(tasks, rate=0.7, families=("compare",), seed=0)
    assert [t.prompt for t in corrupted] == [t.prompt for t in tasks]
    changed = [(a, b) for a, b in zip(tasks, corrupted) if a != b]
    assert all(a.family == "compare" and b.answer == systematic_error(a) for a, b in changed)
    assert abs(len(changed) / 1500 - 0.7) < 0.04
    assert corrupt_tasks(tasks, rate=0.0, families=("compare",), seed=0) == tasks
