"""Shared fixtures for the loss tests: one CPU thread (the machine is shared) and a fixed seed."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
