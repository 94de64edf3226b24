"""A second demo tokenizer, of another family: byte-level BPE (GPT-2/Llama-3/Qwen style: spaces glued
to the next word, any byte representable, multi-byte characters split into byte tokens) trained
with the `tokenizers` library on the same demo corpus as ml/demo/tokenizer.py, with a different
vocabulary size, its own special tokens and a ChatML chat template. A student built on it cannot
share token ids with the demo teacher, so it exercises cross-tokenizer distillation (ALGORITHMS.md §8)."""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<|begin|>", "<|im_end|>", "<|pad|>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_bpe_tokenizer(texts: list[str], *, vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """Byte-level BPE with `vocab_size` entries (specials and the 256 byte symbols included) trained
    on `texts`, wrapped as an HF fast tokenizer (left padding). The texts are sorted and deduplicated
    first so the trainer sees them in one order."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(sorted(set(texts)), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=256,
    )
