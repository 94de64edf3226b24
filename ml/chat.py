"""The one path from a prompt to model tokens, shared by generation, training, judging and teacher
signals: `render_prompt` (the tokenizer's chat template, or the plain text of a base model),
`prompt_ids` (tokenized once, BOS added the way the tokenizer expects, cut to a window),
`response_ids` (a response closed by the template's end-of-turn token, as a generation ends), and
`stop_token_ids`/`end_of_turn_id`, which tell generation when an answer is finished. Prompts are plain
text or chat messages `[{role, content}, ...]`; nothing here ever sees json-encoded messages."""
from __future__ import annotations

import weakref
from typing import Sequence, Union

Prompt = Union[str, Sequence[dict]]
_PROBE = "\u2063distillery-probe\u2063"  # invisible, never tokenized with its neighbours


def messages_of(prompt: Prompt) -> list[dict]:
    """One user message for plain text; a copy of chat messages otherwise."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    for m in messages:
        if "role" not in m or "content" not in m:
            raise ValueError(f"chat message needs 'role' and 'content': {m!r}")
    return messages


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """Model text for a prompt: the chat template applied to the messages, ending with the
    assistant's turn opener. A tokenizer without a chat template (a base model) gets plain text
    unchanged; chat messages then need a template (a role-tagged guess would be a silent format)."""
    if getattr(tokenizer, "chat_template", None) is None:
        if isinstance(prompt, str):
            return prompt
        raise ValueError("chat messages need a tokenizer with a chat_template (this model is a base model)")
    return tokenizer.apply_chat_template(messages_of(prompt), tokenize=False, add_generation_prompt=True)


def _bos_expected(tokenizer) -> bool:
    """Whether the tokenizer itself puts BOS in front of a text (Llama-style), as the model was trained."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def prompt_ids(tokenizer, prompt: Prompt, *, max_length: int | None = None) -> list[int]:
    """Token ids of the rendered prompt. The template writes its own special tokens, so the text is
    tokenized without them; BOS is then added once when the tokenizer would add it and the text does
    not start with it (base models, and templates that leave BOS to the tokenizer). Over
    `max_length` the prompt keeps its BOS and its tail (the question and the assistant opener)."""
    ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if _bos_expected(tokenizer) and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return truncate_left(ids, max_length, keep_first=bool(ids) and ids[0] == bos)


def truncate_left(ids: list[int], max_length: int | None, *, keep_first: bool = False) -> list[int]:
    """Keep the last `max_length` ids (and the first one too, when `keep_first`: a BOS)."""
    if max_length is None or len(ids) <= max_length:
        return list(ids)
    if max_length < 1:
        raise ValueError(f"no room for the prompt (max_length {max_length})")
    if keep_first and max_length > 1:
        return [ids[0]] + ids[len(ids) - max_length + 1:]
    return ids[len(ids) - max_length:]


_END_OF_TURN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> (template, id)


def _probe_end_of_turn(tokenizer) -> int | None:
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": _PROBE}], tokenize=False)
    tail = rendered.split(_PROBE, 1)[1] if _PROBE in rendered else ""
    special_ids = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    for token in tokenizer(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []:
        if token in special_ids:
            return token
    return None


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template writes right after an assistant message (Llama-3's
    <|eot_id|>, ChatML's <|im_end|>, the demo's eos); eos for a tokenizer without a template, or
    when the template writes no special token there."""
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        return tokenizer.eos_token_id
    cached = _END_OF_TURN.get(tokenizer)
    if cached is None or cached[0] != template:
        cached = (template, _probe_end_of_turn(tokenizer))
        _END_OF_TURN[tokenizer] = cached
    return cached[1] if cached[1] is not None else tokenizer.eos_token_id


def stop_token_ids(tokenizer, generation_eos=None) -> list[int]:
    """Every id that ends an answer: the template's end-of-turn, the tokenizer's eos and whatever
    eos the checkpoint's generation config lists (Llama-3 names several)."""
    ids = [end_of_turn_id(tokenizer), tokenizer.eos_token_id]
    ids += generation_eos if isinstance(generation_eos, list) else [generation_eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


def response_ids(tokenizer, response: str) -> list[int]:
    """A finished response's ids: its text tokenized alone and closed by the end-of-turn token, exactly
    what generation emits after the prompt, so teacher-forced scores match sampled ones."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    closing = end_of_turn_id(tokenizer)
    return ids + ([closing] if closing is not None else [])


def context_window(model) -> int | None:
    """The longest sequence the model was built for (max_position_embeddings), or None if unknown."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(text_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
