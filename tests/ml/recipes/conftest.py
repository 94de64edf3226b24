"""Fixtures for recipe tests: a handful of demo preference pairs (chosen = the checked answer,
rejected = a wrong one) and a small config maker, so every recipe test trains a few steps in
about a second on the tiny fixture models."""
import dataclasses

import pytest
import torch

from ml.config import METHODS, RECIPE_ONLY_METHODS
from ml.data import PreferencePair
from ml.demo.tasks import generate_tasks

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pairs():
    tasks = generate_tasks(8, seed=3)
    return [PreferencePair(t.prompt, t.answer, t.answer[::-1] + " 7" if len(t.answer) > 1 else "no") for t in tasks]


def tiny_config(method, **overrides):
    """A config that trains fast: batch 2, no accumulation, lr high enough to move a tiny model."""
    base = dict(batch_size=2, grad_accum=1, max_length=64, learning_rate=1e-2, warmup_ratio=0.0,
                lr_scheduler="constant", seed=0)
    cls = {**METHODS, **RECIPE_ONLY_METHODS}[method]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**base, **overrides}.items() if k in names})


@pytest.fixture
def make_config():
    return tiny_config
