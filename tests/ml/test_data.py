"""ml/data.py: JSONL round trips and the errors that name the file line."""
import pytest

from ml.data import (PreferencePair, RankedList, SFTExample, load_preference_pairs, load_ranked_lists,
                     load_sft_examples, write_jsonl)


def test_round_trips(tmp_path):
    chat = [{"role": "user", "content": "hi"}]
    pairs = [PreferencePair("q", "a", "b"), PreferencePair(chat, "c", "d")]
    assert load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", pairs)) == pairs
    ranked = [RankedList("q", ["x", "y", "z"], [0.1, 0.7, 0.2])]
    assert load_ranked_lists(write_jsonl(tmp_path / "r.jsonl", ranked)) == ranked
    # pairs read as SFT data give their chosen side
    assert load_sft_examples(tmp_path / "p.jsonl") == [SFTExample("q", "a"), SFTExample(chat, "c")]


def test_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field\(s\) rejected"):
        load_preference_pairs(path)
    path.write_text('{"prompt": 3, "response": "a"}\n')
    with pytest.raises(ValueError, match="prompt must be"):
        load_sft_examples(path)
    path.write_text('{"prompt": "q", "responses": ["a"], "scores": [1, 2]}\n')
    with pytest.raises(ValueError, match="1 responses but 2 scores"):
        load_ranked_lists(path)
