"""The demo world's instruction tasks: seeded generators for a handful of task families whose
answers can be checked, and the oracle that checks them. Each prompt follows one fixed template per
family, so a prompt string alone can be parsed back into its task and scored. Standard library only
(the web app may import it to score outputs without torch)."""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, replace

WORDS = (
    "cat", "dog", "sun", "tree", "bird", "fish", "apple", "lemon",
    "river", "stone", "cloud", "garden", "pepper", "window", "yellow", "orange",
)
MAX_DIGIT = 9
MAX_COMPARE = 20


@dataclass(frozen=True)
class Task:
    """One demo instruction: its family, the user prompt, and the one correct answer."""

    family: str
    prompt: str
    answer: str

    def to_dict(self) -> dict:
        return asdict(self)


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.sample(WORDS, rng.randint(low, high))


def _add(rng):
    a, b = rng.randint(0, MAX_DIGIT), rng.randint(0, MAX_DIGIT)
    return f"What is {a} plus {b}?", str(a + b)


def _subtract(rng):
    a, b = sorted((rng.randint(0, MAX_DIGIT), rng.randint(0, MAX_DIGIT)), reverse=True)
    return f"What is {a} minus {b}?", str(a - b)


def _compare(rng):
    a, b = rng.sample(range(MAX_COMPARE + 1), 2)
    return f"Which is larger: {a} or {b}?", str(max(a, b))


def _reverse(rng):
    words = _words(rng, 2, 4)
    return "Reverse the words: " + " ".join(words), " ".join(reversed(words))


def _sort(rng):
    words = _words(rng, 2, 4)
    return "Sort the words: " + " ".join(words), " ".join(sorted(words))


def _count_words(rng):
    words = _words(rng, 1, 6)
    return "How many words: " + " ".join(words), str(len(words))


def _count_letters(rng):
    word = rng.choice(WORDS)
    return f"How many letters in {word}?", str(len(word))


GENERATORS = {
    "add": _add,
    "subtract": _subtract,
    "compare": _compare,
    "reverse": _reverse,
    "sort": _sort,
    "count_words": _count_words,
    "count_letters": _count_letters,
}
FAMILIES = tuple(GENERATORS)

# One pattern per family, anchored on the template's fixed words, so that `task_from_prompt`
# also finds the task inside a chat-rendered prompt.
_WORD = "(?:" + "|".join(WORDS) + ")"
_PATTERNS = {
    "add": re.compile(r"What is (\d+) plus (\d+)\?"),
    "subtract": re.compile(r"What is (\d+) minus (\d+)\?"),
    "compare": re.compile(r"Which is larger: (\d+) or (\d+)\?"),
    "reverse": re.compile(rf"Reverse the words:((?: {_WORD})+)"),
    "sort": re.compile(rf"Sort the words:((?: {_WORD})+)"),
    "count_words": re.compile(rf"How many words:((?: {_WORD})+)"),
    "count_letters": re.compile(r"How many letters in ([a-z]+)\?"),
}


def generate_tasks(n: int, *, seed: int, families: tuple[str, ...] = FAMILIES) -> list[Task]:
    """`n` tasks, families drawn round-robin so every family gets n/len(families); deterministic."""
    unknown = set(families) - set(GENERATORS)
    if unknown:
        raise ValueError(f"unknown task families {sorted(unknown)}; known: {list(FAMILIES)}")
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        family = families[i % len(families)]
        prompt, answer = GENERATORS[family](rng)
        tasks.append(Task(family, prompt, answer))
    return tasks


def prompt_content_hash(prompt: str) -> str:
    """sha256 hex of a text prompt, computed exactly as the web app's `Prompt.content_hash`
    (`webapp.catalog.services.prompt_content_hash(text=prompt)`: the JSON of {"messages": null,
    "text": prompt.strip()} with sorted keys, UTF-8). ml/ may not import the web app, so the rule is
    repeated here and a test checks the two agree."""
    payload = json.dumps({"text": prompt.strip(), "messages": None}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


HELD_OUT_PERCENT = 20


def prompt_split(prompt: str) -> str:
    """"eval" for a fixed 20% of all possible prompts (chosen by content hash), "train" for the rest.
    The demo build draws its SFT data and training prompts from "train" only and its held-out prompts
    from "eval" only, so the two are disjoint by content whatever the seeds and sizes."""
    return "eval" if int(prompt_content_hash(prompt)[:8], 16) % 100 < HELD_OUT_PERCENT else "train"


def generate_split_tasks(n: int, *, seed: int, split: str, families: tuple[str, ...] = FAMILIES,
                         max_tries: int = 200) -> list[Task]:
    """`n` tasks whose prompts all fall in `split` ("train" or "eval"), families round-robin as in
    `generate_tasks` (a family whose prompt space is small repeats prompts). Deterministic."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    rng, tasks = random.Random(seed), []
    for i in range(n):
        family = families[i % len(families)]
        for _ in range(max_tries):
            prompt, answer = GENERATORS[family](rng)
            if prompt_split(prompt) == split:
                break
        else:
            raise ValueError(f"family {family!r} has no {split} prompts after {max_tries} draws")
        tasks.append(Task(family, prompt, answer))
    return tasks


# The demo teacher's known flaw (ALGORITHMS.md and docs/demo.md): in its SFT data, this share of the
# answers of these families follow a systematic wrong rule. Everything else is right.
SYSTEMATIC_ERRORS = {
    "compare": "names the smaller number",
    "sort": "sorts the words in reverse (descending) order",
    "count_words": "counts one word too many",
}


def systematic_error(task: Task) -> str:
    """The wrong answer the corrupted SFT data gives for `task` (a family in SYSTEMATIC_ERRORS)."""
    if task.family == "compare":
        a, b = (int(x) for x in _PATTERNS["compare"].search(task.prompt).groups())
        return str(min(a, b))
    if task.family == "sort":
        return " ".join(sorted(task.answer.split(), reverse=True))
    if task.family == "count_words":
        return str(int(task.answer) + 1)
    raise ValueError(f"no systematic error defined for family {task.family!r}")


def corrupt_tasks(tasks: list[Task], *, rate: float, families: tuple[str, ...], seed: int) -> list[Task]:
    """A copy of `tasks` where each task of `families` gets its systematic wrong answer with
    probability `rate` (seeded). The oracle still knows the right answer from the prompt."""
    rng = random.Random(seed)
    return [replace(t, answer=systematic_error(t)) if t.family in families and rng.random() < rate else t
            for t in tasks]


def task_from_prompt(prompt: str) -> Task | None:
    """Parse a demo prompt (plain or chat-rendered) back into its task; None if it is not one."""
    for family, pattern in _PATTERNS.items():
        match = pattern.search(prompt)
        if match is None:
            continue
        if family in ("add", "subtract", "compare"):
            a, b = int(match.group(1)), int(match.group(2))
            answer = {"add": a + b, "subtract": a - b, "compare": max(a, b)}[family]
            return Task(family, match.group(0), str(answer))
        if family == "count_letters":
            return Task(family, match.group(0), str(len(match.group(1))))
        words = match.group(1).split()
        answer = {
            "reverse": " ".join(reversed(words)),
            "sort": " ".join(sorted(words)),
            "count_words": str(len(words)),
        }[family]
        return Task(family, match.group(0), answer)
    return None


def normalize_response(response: str) -> str:
    """Case, surrounding whitespace and a trailing full stop do not count; the first line does."""
    lines = response.strip().splitlines()
    first = lines[0] if lines else ""
    return " ".join(first.lower().rstrip(".").split())


def oracle_score(task_or_prompt: Task | str, response: str) -> bool:
    """True when `response` is the task's answer. A prompt string is parsed with `task_from_prompt`;
    one that is no demo task raises ValueError (the oracle only knows the demo world)."""
    task = task_or_prompt
    if isinstance(task_or_prompt, str):
        task = task_from_prompt(task_or_prompt)
        if task is None:
            raise ValueError(f"not a demo task prompt: {task_or_prompt[:80]!r}")
    return normalize_response(response) == normalize_response(task.answer)
