"""Tests for ml/alignment.py: one text under the demo tokenizer (word pieces, whitespace dropped from
the spans, non-ASCII -> <unk>) and a byte-level BPE (spaces glued to the next word, multi-byte
characters split into byte tokens), built here from an explicit vocabulary and merges."""
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ml.alignment import align_text, token_starts
from ml.chat import response_ids


@pytest.fixture(scope="module")
def byte_bpe():
    merges = [("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t"), ("1", "2"), ("4", "5"), ("Ġ", "o")]
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<eos>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


def test_groups_on_differently_split_text(byte_bpe, demo_tokenizer):
    text = "12 cats héllo 345\n ok"
    # BPE:  12 | Ġcat s | Ġ h Ã © l l o | Ġ 3 45 | Ċ Ġo k   (é = two byte tokens sharing one span)
    # demo: 12 | cat ##s | <unk>        | 34 ##5 | o ##k
    ids, starts = token_starts(byte_bpe, text)
    assert len(ids) == 16 and starts[5] == starts[6] == 9  # the two bytes of é start together
    al = align_text(byte_bpe, demo_tokenizer, text)
    assert [text[a:b].strip() for a, b in al.spans] == ["12", "cat", "s", "héllo", "345", "o", "k", ""]
    assert al.teacher_count == [1, 1, 1, 7, 3, 2, 1, 1]
    assert al.student_count == [1, 1, 1, 1, 2, 1, 1, 1]
    assert al.teacher_first == [0, 1, 2, 3, 10, 13, 15, 16]  # 16 = the end-of-turn after 16 text tokens
    assert al.student_first == [0, 1, 2, 3, 4, 6, 7, 8]
    # one token on both sides: "12 ", "cat", "s ", "k" = 3 + 3 + 2 + 1 characters
    assert al.one_to_one_chars == 9 and al.num_chars == len(text)
    # the token indices are those of the response ids every recipe uses (text ids, end-of-turn last)
    assert response_ids(demo_tokenizer, text)[:-1] == token_starts(demo_tokenizer, text)[0]


def test_identical_tokenizers_give_one_group_per_token(demo_tokenizer):
    al = align_text(demo_tokenizer, demo_tokenizer, "sort: pear apple 17")
    assert al.teacher_first == al.student_first == list(range(al.num_groups))
    assert al.one_to_one_share == 1.0
