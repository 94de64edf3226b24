"""The demo world's tokenizer: a word vocabulary trained with the `tokenizers` library on demo
task text (so every demo word and small number is one token), WordPiece-style character pieces
for any other ASCII text, wrapped as a standard HF fast tokenizer with bos/eos/pad/unk tokens,
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


def train_demo_tokenizer(texts: list[str], *, vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a word vocabulary on `texts` and wrap it as an HF tokenizer (left padding).

    The `tokenizers` WordLevel trainer counts the words (at most `vocab_size`, most frequent
    first); every ASCII character, alone and as a "##" continuation, is added so that any other
    ASCII word is spelled out piece by piece instead of becoming <unk>. (Its BPE/WordPiece trainers
    break ties in hash-map order, which differs from run to run; word counting does not.)"""
    counter = Tokenizer(models.WordLevel(unk_token=UNK))
    counter.normalizer = normalizers.NFKC()
    counter.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    counter.train_from_iterator(texts, trainer=trainer)
    alphabet = string.ascii_letters + string.digits + string.punctuation
    pieces = sorted(alphabet) + sorted("##" + c for c in alphabet)
    words = sorted(set(counter.get_vocab()) - set(SPECIAL_TOKENS) - set(pieces), key=lambda w: (len(w), w))
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + pieces + words)}

    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=64))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
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
