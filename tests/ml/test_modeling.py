"""ml.modeling: dtype choice, loading a saved model dir (frozen / trainable / LoRA), the load
ledger, the shared tokenizer check, and prompt rendering through the chat template."""
import json
import os

import pytest
import torch

from ml.demo.tasks import generate_tasks
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer
from ml.modeling import (
    LoraSpec,
    TokenizerMismatchError,
    check_same_tokenizer,
    load_model,
    pick_dtype,
    render_prompt,
)


def test_dtype_follows_device():
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16


def test_load_frozen_model_with_left_padding_tokenizer(tiny_student_dir):
    loaded = load_model(str(tiny_student_dir), device="cpu")
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token == "<pad>"
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.num_parameters == loaded.model.num_parameters()
    assert loaded.source == str(tiny_student_dir) and loaded.revision is None
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_load_trainable_model(tiny_student_dir):
    loaded = load_model(str(tiny_student_dir), device="cpu", trainable=True)
    assert loaded.model.training
    assert all(p.requires_grad for p in loaded.model.parameters())


def test_lora_trains_only_the_adapters(tiny_student_dir):
    spec = LoraSpec(r=2, alpha=4, dropout=0.0, target_modules=("q_proj", "v_proj"))
    loaded = load_model(str(tiny_student_dir), device="cpu", lora=spec, trainable=True)
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    # tiny-student: hidden 8, one layer; per projection A (2x8) + B (8x2) = 32, two projections.
    assert trainable == 64


def test_same_tokenizer_passes(tiny_teacher_dir, tiny_student_dir):
    teacher, student = load_model(str(tiny_teacher_dir)), load_model(str(tiny_student_dir))
    check_same_tokenizer(teacher.tokenizer, student.tokenizer, method="DCKD")


def test_different_tokenizer_is_refused_with_the_method_named(demo_tokenizer):
    other = train_demo_tokenizer(["a corpus of other words", "shares no task words"])
    with pytest.raises(TokenizerMismatchError, match="ADPA .*share one tokenizer.*vocabularies differ"):
        check_same_tokenizer(demo_tokenizer, other, method="ADPA")


def test_different_special_token_is_refused(demo_tokenizer):
    other = train_demo_tokenizer(corpus_from_tasks(generate_tasks(350, seed=0)))
    other.eos_token = "<|assistant|>"
    with pytest.raises(TokenizerMismatchError, match="eos_token differs"):
        check_same_tokenizer(demo_tokenizer, other, method="GKD")


def test_render_prompt_text_and_messages(demo_tokenizer):
    assert render_prompt(demo_tokenizer, "What is 1 plus 2?") == "<bos><|user|>What is 1 plus 2?<|assistant|>"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Sort the words: dog cat"},
    ]
    assert render_prompt(demo_tokenizer, messages) == (
        "<bos><|system|>Be brief.<|user|>Sort the words: dog cat<|assistant|>"
    )


def test_render_prompt_without_template(demo_tokenizer):
    bare = train_demo_tokenizer(corpus_from_tasks(generate_tasks(50, seed=0)))
    bare.chat_template = None
    assert render_prompt(bare, "plain text") == "plain text"
    with pytest.raises(ValueError, match="chat_template"):
        render_prompt(bare, [{"role": "user", "content": "hi"}])


def test_weights_are_hashed_once_then_reused_from_the_sidecar(tiny_teacher_dir, tmp_path, monkeypatch):
    """The first call reads every file and leaves a sidecar; a later call (another process, emulated by
    clearing the in-process cache) reuses it without reading the weights; rewriting a file re-hashes
    it. weights_hash with a stored hash returns it untouched while the fingerprint holds."""
    import hashlib
    import shutil

    from ml import modeling

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_teacher_dir, model_dir)
    first = modeling.file_hashes(model_dir)
    weights = model_dir / "model.safetensors"
    assert first["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (model_dir / modeling.SIDECAR).is_file()
    modeling._FILE_HASHES.clear()
    monkeypatch.setattr(modeling, "_sha256_file", lambda path: pytest.fail(f"re-read {path}"))
    assert modeling.file_hashes(model_dir) == first
    stored = modeling.weights_hash(model_dir)
    assert modeling.weights_hash(model_dir, stored=stored) is stored
    monkeypatch.undo()
    weights.write_bytes(weights.read_bytes() + b"")  # same bytes, new mtime: hashed again, same digest
    (model_dir / "config.json").write_text('{"changed": true}')  # new content: the model hash changes
    again = modeling.weights_hash(model_dir, stored=stored)
    assert again is not stored and again["sha256"] != stored["sha256"]
    assert modeling.file_hashes(model_dir)["model.safetensors"] == first["model.safetensors"]


def test_a_read_only_model_dir_is_hashed_without_a_sidecar(tiny_teacher_dir, tmp_path):
    """A model dir it cannot write (a mounted hub cache) still gets its hashes (root can write anyway)."""
    import os
    import shutil

    from ml import modeling

    model_dir = tmp_path / "ro"
    shutil.copytree(tiny_teacher_dir, model_dir)
    (model_dir / modeling.SIDECAR).unlink(missing_ok=True)
    os.chmod(model_dir, 0o555)
    try:
        hashes = modeling.file_hashes(model_dir)
    finally:
        os.chmod(model_dir, 0o755)
    assert "model.safetensors" in hashes and (os.geteuid() == 0 or not (model_dir / modeling.SIDECAR).exists())


def test_model_ref_carries_a_pinned_revision(tiny_teacher_dir):
    from ml.modeling import model_ref, split_model_ref

    assert model_ref("org/name", "abc") == "org/name@abc" and split_model_ref("org/name@abc") == ("org/name", "abc")
    assert model_ref(str(tiny_teacher_dir), "abc") == str(tiny_teacher_dir)  # a local directory has no revision
    assert split_model_ref("org/name", "v1") == ("org/name", "v1")


def test_loads_in_two_threads_at_once_leave_later_loads_working(tiny_teacher_dir, tiny_student_dir):
    """transformers patches module-level functions (init, tie_weights) while it loads and restores
    them afterwards; two loads overlapping in one process (the training task and its checkpoint
    evaluator thread) can restore each other's patches and leave tie_weights a no-op for good, after
    which every tied model fails with "Cannot copy out of meta tensor". Loads must not interleave."""
    import threading

    from transformers import PreTrainedModel

    original_tie = PreTrainedModel.tie_weights
    errors = []

    def load_many(source):
        try:
            for _ in range(6):
                load_model(str(source), device="cpu")
        except Exception as exc:  # collected: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=load_many, args=(d,)) for d in (tiny_teacher_dir, tiny_student_dir) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert PreTrainedModel.tie_weights is original_tie
    loaded = load_model(str(tiny_student_dir), device="cpu")
    assert not any(p.is_meta for p in loaded.model.parameters())


def test_the_load_ledger_lists_each_loaded_source(tiny_teacher_dir, tiny_student_dir, tmp_path, monkeypatch):
    ledger = tmp_path / "loads.jsonl"
    load_model(str(tiny_student_dir), device="cpu")
    assert not ledger.exists()  # no ledger unless asked for
    monkeypatch.setenv("DISTILLERY_LOAD_LEDGER", str(ledger))
    load_model(str(tiny_student_dir), device="cpu")
    load_model(str(tiny_teacher_dir), device="cpu")
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [line["source"] for line in lines] == [str(tiny_student_dir), str(tiny_teacher_dir)]
    assert all(line["pid"] == os.getpid() for line in lines)
