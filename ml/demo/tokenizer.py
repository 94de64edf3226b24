"""The demo world's tokenizer: a WordPiece vocabulary trained with the `tokenizers` library on demo
task text (so every demo word and small number is one token, and any other ASCII text still
tokenizes, piece by piece), wrapped as a standard HF fast tokenizer with bos/eos/pad/unk tokens,
role tokens and a chat template. Whitespace is not part of the tokens: "cat" is the same token at
the start of a response as inside a prompt, which keeps the demo tasks easy for tiny models."""
from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ml.demo.tasks import MAX_COMPARE, WORDS, Task

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]

# Roles become single tokens; an assistant turn ends with eos so a trained model learns to stop.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def corpus_from_tasks(tasks: list[Task]) -> list[str]:
    """Training text for the tokenizer: every prompt and answer, plus each demo word and number
    once, so that rare ones still become whole tokens."""
    texts = [t for task in tasks for t in (task.prompt, task.answer)]
    texts += list(WORDS) + [str(n) for n in range(2 * MAX_COMPARE + 1)]
    return texts


def train_demo_tokenizer(texts: list[str], *, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a WordPiece tokenizer on `texts` and wrap it as an HF tokenizer (left padding)."""
    # Doubled characters put both "c" and the word-continuation "##c" of every ASCII character in
    # the vocabulary, so no ASCII word falls back to <unk>.
    alphabet = string.ascii_letters + string.digits + string.punctuation
    texts = list(texts) + [c + c for c in alphabet]
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=64))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=list(alphabet),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=256,
    )
