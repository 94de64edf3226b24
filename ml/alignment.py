"""Character-span alignment of one text under two tokenizers (ALGORITHMS.md §8), for token-level
distillation between a teacher and a student that do not share a vocabulary.

Both fast tokenizers tokenize the same response text alone (as ml.chat.response_ids does) and report
each token's character span (`return_offsets_mapping`). A token's start is snapped past leading
whitespace, because one tokenizer may glue a space to the next word ("Ġcat", span " cat") and the
other drop it (WordPiece after a whitespace pre-tokenizer, span "cat"). The common boundaries are
the starts both sides share; they cut the text into groups, each one or more teacher tokens and one
or more student tokens over the same characters (the pieces of one multi-byte character share a
start, so they always fall into one group). The template's end-of-turn token closes both responses
and forms a last group of its own. Tokens before the first common boundary (a leading piece one side
splits off and the other does not) belong to no group and take no distillation term.

TRL 1.16 keeps its version inside trl.experimental.gold (a private method of ULDLoss walking UTF-8
byte offsets it derives for ByteLevel-BPE tokenizers only, raising NotImplementedError otherwise),
so it is written here, for any fast tokenizer."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alignment:
    """Groups of a response under a teacher (t) and a student (s) tokenization, as token indices
    into each side's response ids (end-of-turn token included, last)."""

    teacher_first: list  # per group: index of the group's first teacher token
    student_first: list  # per group: index of its first student token
    teacher_count: list  # tokens per group, teacher side
    student_count: list
    spans: list  # per group: (start, end) characters of the text; end-of-turn: (len, len)
    one_to_one_chars: int  # characters covered by groups of a single token on both sides
    num_chars: int

    @property
    def num_groups(self) -> int:
        return len(self.spans)

    @property
    def one_to_one_share(self) -> float:
        """Share of the text's characters in groups of one token on both sides (ALGORITHMS.md §8 log)."""
        return self.one_to_one_chars / self.num_chars if self.num_chars else 1.0


def token_starts(tokenizer, text: str) -> tuple[list, list]:
    """(ids, starts) of `text` tokenized alone, without special tokens; starts snapped past whitespace
    and never decreasing (a token with an empty or whitespace-only span starts where the next visible
    character does, so it joins that character's group)."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts, previous = [], 0
    for start, end in encoded["offset_mapping"]:
        while start < len(text) and text[start].isspace():
            start += 1
        start = max(start, previous)
        starts.append(start)
        previous = start
    return list(encoded["input_ids"]), starts


def align(teacher_starts: list, student_starts: list, num_chars: int, *, end_token: bool = True) -> Alignment:
    """Groups from both sides' token starts over a text of `num_chars` characters. With `end_token`,
    one more token on each side (the end-of-turn) follows the text and forms the last group."""
    common = sorted(set(teacher_starts) & set(student_starts))
    cuts = common + [num_chars]
    spans, first_t, first_s, count_t, count_s, one_to_one = [], [], [], [], [], 0
    t = s = 0
    for g, start in enumerate(common):
        end = cuts[g + 1]
        while t < len(teacher_starts) and teacher_starts[t] < start:
            t += 1
        while s < len(student_starts) and student_starts[s] < start:
            s += 1
        t_end, s_end = t, s
        while t_end < len(teacher_starts) and teacher_starts[t_end] < end:
            t_end += 1
        while s_end < len(student_starts) and student_starts[s_end] < end:
            s_end += 1
        if start >= num_chars:  # tokens after the last visible character (trailing whitespace pieces)
            break
        spans.append((start, end))
        first_t.append(t)
        first_s.append(s)
        count_t.append(t_end - t)
        count_s.append(s_end - s)
        if t_end - t == 1 and s_end - s == 1:
            one_to_one += end - start
        t, s = t_end, s_end
    if end_token:
        spans.append((num_chars, num_chars))
        first_t.append(len(teacher_starts))
        first_s.append(len(student_starts))
        count_t.append(1)
        count_s.append(1)
    return Alignment(first_t, first_s, count_t, count_s, spans, one_to_one, num_chars)


def align_text(teacher_tokenizer, student_tokenizer, text: str, *, end_token: bool = True) -> Alignment:
    """Align `text` as both tokenizers split it on its own (the response ids of ml.chat)."""
    _, teacher_starts = token_starts(teacher_tokenizer, text)
    _, student_starts = token_starts(student_tokenizer, text)
    return align(teacher_starts, student_starts, len(text), end_token=end_token)


def same_tokenizer(teacher_tokenizer, student_tokenizer) -> bool:
    """Whether the two tokenizers share one vocabulary and special tokens (ml.modeling.check_same_tokenizer)."""
    from ml.modeling import TokenizerMismatchError, check_same_tokenizer

    try:
        check_same_tokenizer(teacher_tokenizer, student_tokenizer, method="the comparison")
    except TokenizerMismatchError:
        return False
    return True
