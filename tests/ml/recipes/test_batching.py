"""The stacked forward pass DCKD and ADPA use equals two separate passes (right padding changes no
real position's logits)."""
import torch

from ml.modeling import load_model
from ml.recipes.batching import collate, encode, forward_logits, forward_pair_logits


def test_one_stacked_pass_equals_two_passes(tiny_student_dir):
    loaded = load_model(str(tiny_student_dir), dtype=torch.float32)
    tok = loaded.tokenizer
    short = [encode(tok, "add 2 and 3", "5", 64)]
    long = [encode(tok, "reverse the words: red blue green", "green blue red", 64),
            encode(tok, "sort the words: pear apple fig", "apple fig pear", 64)]
    first, second = collate(short, tok.pad_token_id), collate(long, tok.pad_token_id)
    assert first["input_ids"].shape[1] < second["input_ids"].shape[1]  # the stacked pass pads `first`
    with torch.no_grad():
        a, b = forward_pair_logits(loaded.model, first, second, tok.pad_token_id)
        assert a.shape == (1, first["input_ids"].shape[1] - 1, loaded.model.config.vocab_size)
        assert b.shape[0] == 2
        torch.testing.assert_close(a, forward_logits(loaded.model, first), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b, forward_logits(loaded.model, second), atol=1e-5, rtol=1e-5)
