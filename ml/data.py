"""Training data as plain dataclasses (what a preference snapshot exports) and their JSONL files.
A prompt is either a string or chat messages (`[{"role": ..., "content": ...}, ...]`); rendering it
for a model is `ml.modeling.render_prompt`'s job, not this module's."""
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Union

Prompt = Union[str, list]


@dataclass(frozen=True)
class SFTExample:
    prompt: Prompt
    response: str


@dataclass(frozen=True)
class PreferencePair:
    prompt: Prompt
    chosen: str
    rejected: str


@dataclass(frozen=True)
class RankedList:
    """k candidate responses to one prompt; higher score = better (human ranking or teacher scores)."""

    prompt: Prompt
    responses: list
    scores: list


def _check_prompt(prompt, where: str) -> None:
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in prompt):
        return
    raise ValueError(f"{where}: prompt must be a string or a list of {{role, content}} messages")


def _from_row(cls, row: dict, where: str):
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)} for {cls.__name__}")
    _check_prompt(row["prompt"], where)
    example = cls(**{n: row[n] for n in names})
    if isinstance(example, RankedList) and len(example.responses) != len(example.scores):
        raise ValueError(f"{where}: {len(example.responses)} responses but {len(example.scores)} scores")
    return example


def read_jsonl(path) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped)."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
    return rows


def write_jsonl(path, examples) -> Path:
    """Write dataclass examples (or dicts) one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            row = example if isinstance(example, dict) else asdict(example)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _load(cls, path) -> list:
    return [_from_row(cls, row, f"{path}:{i}") for i, row in enumerate(read_jsonl(path), 1)]


def load_sft_examples(path) -> list[SFTExample]:
    """Rows {prompt, response}; preference rows {prompt, chosen, rejected} are read as their chosen side."""
    examples = []
    for i, row in enumerate(read_jsonl(path), 1):
        if "response" not in row and "chosen" in row:
            row = {"prompt": row.get("prompt"), "response": row["chosen"]}
        examples.append(_from_row(SFTExample, row, f"{path}:{i}"))
    return examples


def load_preference_pairs(path) -> list[PreferencePair]:
    """Rows {prompt, chosen, rejected}."""
    return _load(PreferencePair, path)


def load_ranked_lists(path) -> list[RankedList]:
    """Rows {prompt, responses, scores}."""
    return _load(RankedList, path)


def sft_examples_from_pairs(pairs) -> list[SFTExample]:
    """The chosen side of preference pairs, for SFT / the NLL term."""
    return [SFTExample(prompt=p.prompt, response=p.chosen) for p in pairs]
