"""Session-wide fixtures for ml tests: the demo tokenizer and a tiny random-init teacher and student
(Llama, a few thousand parameters, sharing that tokenizer), each saved in a tmp dir the way a real
model directory looks (safetensors weights + config + tokenizer), built in about a second."""
import pytest
import torch

from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import generate_tasks
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demo_tokenizer():
    """The demo tokenizer object (trained on 350 demo tasks)."""
    return train_demo_tokenizer(corpus_from_tasks(generate_tasks(350, seed=0)))


@pytest.fixture(scope="session")
def demo_tokenizer_dir(tmp_path_factory, demo_tokenizer):
    """Path of the saved demo tokenizer (AutoTokenizer.from_pretrained loads it)."""
    path = tmp_path_factory.mktemp("demo-tokenizer")
    demo_tokenizer.save_pretrained(path)
    return path


def _tiny_model_dir(tmp_path_factory, tokenizer, size, seed):
    path = tmp_path_factory.mktemp(size)
    save_model_dir(build_model(llama_config(tokenizer, size), seed=seed), tokenizer, path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, demo_tokenizer):
    """Path of a random-init tiny Llama teacher (hidden 16, 2 layers) with the demo tokenizer."""
    return _tiny_model_dir(tmp_path_factory, demo_tokenizer, "tiny-teacher", seed=1)


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory, demo_tokenizer):
    """Path of a random-init tiny Llama student (hidden 8, 1 layer) with the demo tokenizer."""
    return _tiny_model_dir(tmp_path_factory, demo_tokenizer, "tiny-student", seed=2)


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A tokenizer of another family (byte-level BPE, 384 entries, ChatML template) on the same corpus."""
    from ml.demo.bpe_tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(corpus_from_tasks(generate_tasks(350, seed=0)))


@pytest.fixture(scope="session")
def tiny_bpe_student_dir(tmp_path_factory, bpe_tokenizer):
    """Path of a random-init tiny Llama student on bpe_tokenizer (no token ids shared with the teacher)."""
    return _tiny_model_dir(tmp_path_factory, bpe_tokenizer, "tiny-student", seed=2)
