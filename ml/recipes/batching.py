"""Turning (prompt, response) text into the token ids every recipe and every cached teacher signal
agree on, and padding them into shifted training tensors. Tokenization itself is ml.chat's (the
one path generation and judging use): a response is tokenized on its own and closed with the
template's end-of-turn token, so its ids are exactly the ones a generation would produce after
the prompt, and a cached top-K row j always belongs to the state that predicts response token j."""
from dataclasses import dataclass

import torch

from ml.chat import prompt_ids as _chat_prompt_ids
from ml.chat import response_ids as _chat_response_ids
from ml.losses.common import IGNORE_INDEX


@dataclass(frozen=True)
class Encoded:
    prompt_ids: list  # rendered prompt (chat template included)
    response_ids: list  # response tokens, eos last unless cut by max_length


def encode_prompt(tokenizer, prompt) -> list:
    """Token ids of the rendered prompt, exactly as ml.generation tokenizes it (ml.chat.prompt_ids:
    template, BOS where the tokenizer expects one), so cached student responses continue these ids."""
    return _chat_prompt_ids(tokenizer, prompt)


def encode_response(tokenizer, response: str) -> list:
    return _chat_response_ids(tokenizer, response)


def fit(prompt_ids: list, response_ids: list, max_length: int) -> Encoded:
    """Cut to max_length total: the response's tail goes first (its start carries the signal), then
    the prompt's head, keeping at least one response token."""
    response_ids = response_ids[: max(1, max_length - len(prompt_ids))]
    prompt_room = max_length - len(response_ids)
    if len(prompt_ids) > prompt_room:
        prompt_ids = prompt_ids[len(prompt_ids) - prompt_room:]
    return Encoded(list(prompt_ids), list(response_ids))


def encode(tokenizer, prompt, response: str, max_length: int) -> Encoded:
    return fit(encode_prompt(tokenizer, prompt), encode_response(tokenizer, response), max_length)


def collate(rows: list, pad_id: int) -> dict:
    """rows: list of Encoded -> right-padded, already SHIFTED tensors:
    input_ids, attention_mask (B,L); labels (B,L-1) with labels[:, t] = input_ids[:, t+1] on response
    tokens and -100 elsewhere, so `logits[:, :-1]` lines up with `labels` as ml/losses expects;
    response_start (B,) = index in the shifted frame of the state predicting response token 0."""
    length = max(len(r.prompt_ids) + len(r.response_ids) for r in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length - 1), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        ids = row.prompt_ids + row.response_ids
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        start = len(row.prompt_ids) - 1
        labels[i, start: start + len(row.response_ids)] = torch.tensor(row.response_ids)
    response_start = torch.tensor([len(r.prompt_ids) - 1 for r in rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "response_start": response_start}


def scatter_rows(per_row: list, response_start: torch.Tensor, length: int, fill=0) -> torch.Tensor:
    """Place per-response arrays (R_i, K) at their response positions of a shifted (B, length, K)
    tensor: row j of example i lands at response_start[i] + j. Positions outside stay `fill`."""
    first = per_row[0]
    out = torch.full((len(per_row), length, *first.shape[1:]), fill, dtype=first.dtype)
    for i, values in enumerate(per_row):
        start = int(response_start[i])
        n = min(len(values), length - start)
        out[i, start: start + n] = values[:n]
    return out


def _pad_to(values: torch.Tensor, length: int, fill: int) -> torch.Tensor:
    return torch.nn.functional.pad(values, (0, length - values.shape[1]), value=fill)


def forward_pair_logits(model, first: dict, second: dict, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted logits of two collated batches from ONE forward pass over both, stacked (as TRL's DPO
    does with chosen and rejected): on a small model one pass of 2B rows costs far less than two of
    B. Rows are right-padded, so the extra padding changes no real position's logits.
    Returns (B1, L1-1, V) and (B2, L2-1, V), each cut back to its own batch's length."""
    length = max(first["input_ids"].shape[1], second["input_ids"].shape[1])
    both = {"input_ids": torch.cat([_pad_to(b["input_ids"], length, pad_id) for b in (first, second)]),
            "attention_mask": torch.cat([_pad_to(b["attention_mask"], length, 0) for b in (first, second)])}
    logits = forward_logits(model, both)  # (B1+B2, length-1, V)
    rows = first["input_ids"].shape[0]
    return (logits[:rows, : first["input_ids"].shape[1] - 1], logits[rows:, : second["input_ids"].shape[1] - 1])


def forward_logits(model, batch: dict) -> torch.Tensor:
    """Shifted logits (B, L-1, V) of a collated batch, on the model's device."""
    device = next(model.parameters()).device
    logits = model(input_ids=batch["input_ids"].to(device),
                   attention_mask=batch["attention_mask"].to(device)).logits
    return logits[:, :-1]
