"""ml.chat, the one prompt/response tokenization path: BOS exactly once, the way the tokenizer
expects (a Llama-style tokenizer that adds BOS itself, with and without a template that writes it;
a tokenizer that adds none), the template's end-of-turn token found by rendering an assistant turn,
left truncation that keeps BOS, and chat messages refused for a base model instead of guessed."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from ml.chat import end_of_turn_id, prompt_ids, render_prompt, response_ids, stop_token_ids, truncate_left

WORDS = ["<unk>", "<s>", "</s>", "<|eot|>", "hello", "world", "user", "assistant", ":", "hi"]


def llama_style(*, adds_bos: bool, template: str | None):
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos:
        core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        additional_special_tokens=["<|eot|>"])
    tokenizer.chat_template = template
    return tokenizer


WITH_BOS = "{{ bos_token }}{% for m in messages %} {{ m['role'] }} : {{ m['content'] }} {% if m['role'] == 'assistant' %}<|eot|>{% endif %}{% endfor %}{% if add_generation_prompt %} assistant :{% endif %}"
WITHOUT_BOS = WITH_BOS.replace("{{ bos_token }}", "")


def test_base_model_gets_the_bos_its_tokenizer_adds():
    base = llama_style(adds_bos=True, template=None)
    assert prompt_ids(base, "hello world") == [1, 4, 5]
    assert prompt_ids(llama_style(adds_bos=False, template=None), "hello world") == [4, 5]


def test_bos_once_whether_or_not_the_template_writes_it():
    assert prompt_ids(llama_style(adds_bos=True, template=WITH_BOS), "hi") == [1, 6, 8, 9, 7, 8]
    assert prompt_ids(llama_style(adds_bos=True, template=WITHOUT_BOS), "hi") == [1, 6, 8, 9, 7, 8]
    assert prompt_ids(llama_style(adds_bos=False, template=WITHOUT_BOS), "hi") == [6, 8, 9, 7, 8]


def test_end_of_turn_is_the_templates_not_eos():
    chat = llama_style(adds_bos=True, template=WITH_BOS)
    assert end_of_turn_id(chat) == 3 and response_ids(chat, "hello") == [4, 3]
    assert stop_token_ids(chat, [2, 7]) == [3, 2, 7]
    base = llama_style(adds_bos=True, template=None)
    assert end_of_turn_id(base) == 2 and response_ids(base, "hello") == [4, 2]


def test_truncation_keeps_bos_and_the_tail():
    tokenizer = llama_style(adds_bos=True, template=WITH_BOS)
    assert prompt_ids(tokenizer, "hi", max_length=3) == [1, 7, 8]
    assert truncate_left([5, 6, 7], 2) == [6, 7] and truncate_left([5, 6], 5) == [5, 6]
    with pytest.raises(ValueError, match="no room"):
        truncate_left([1, 2], 0)


def test_messages_need_a_template():
    with pytest.raises(ValueError, match="chat_template"):
        render_prompt(llama_style(adds_bos=True, template=None), [{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="'role' and 'content'"):
        render_prompt(llama_style(adds_bos=True, template=WITH_BOS), [{"text": "hi"}])
