"""Demo tokenizer: demo words are whole tokens, any ASCII round-trips without <unk>, the special
tokens and chat template survive save/load."""
from transformers import AutoTokenizer

from ml.demo.tasks import WORDS


def test_saved_tokenizer_loads_with_specials_and_template(demo_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer_dir)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert tokenizer.padding_side == "left"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<bos><|user|>What is 2 plus 3?<|assistant|>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert tokens == ["<bos>", "<|user|>", "What", "is", "2", "plus", "3", "?", "<|assistant|>"]


def test_demo_words_are_single_tokens_whatever_the_spacing(demo_tokenizer):
    for word in WORDS:
        assert len(demo_tokenizer(word)["input_ids"]) == 1
    assert demo_tokenizer("cat dog")["input_ids"] == demo_tokenizer(" cat  dog")["input_ids"]


def test_unseen_ascii_text_round_trips_without_unk(demo_tokenizer):
    text = "Zebras quickly jumped over 1234 fences!"
    ids = demo_tokenizer(text)["input_ids"]
    assert demo_tokenizer.unk_token_id not in ids
    assert demo_tokenizer.decode(ids) == text
