"""Demo tasks: generation is seeded and balanced, prompts parse back to their task, the oracle
accepts exactly the answer (modulo case, spaces and a trailing full stop)."""
import pytest

from ml.demo.tasks import FAMILIES, Task, generate_tasks, oracle_score, task_from_prompt


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
