"""Demo model configs: the teacher is several times the student, builds are seeded, and a saved
model directory loads back through AutoModelForCausalLM (safetensors)."""
import torch
from transformers import AutoModelForCausalLM

from ml.demo.configs import build_model, llama_config


def test_teacher_is_several_times_the_student(demo_tokenizer):
    teacher = build_model(llama_config(demo_tokenizer, "teacher"), seed=0)
    student = build_model(llama_config(demo_tokenizer, "student"), seed=0)
    assert teacher.num_parameters() >= 5 * student.num_parameters()


def test_same_seed_same_weights(demo_tokenizer):
    config = llama_config(demo_tokenizer, "tiny-student")
    a, b, c = (build_model(config, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.model.embed_tokens.weight, b.model.embed_tokens.weight)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_fixture_dirs_are_real_model_dirs(tiny_teacher_dir, tiny_student_dir, demo_tokenizer):
    for path in (tiny_teacher_dir, tiny_student_dir):
        assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
        assert model.config.vocab_size == len(demo_tokenizer)
        assert model.num_parameters() < 20_000
