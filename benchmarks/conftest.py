"""Real Fashion-MNIST batches for the benchmarks, on the device aebench would train on."""

from __future__ import annotations

import pytest
import torch

from aebench import data
from aebench.train.device import resolve_device

BATCH = 128  # the seed's batch size


@pytest.fixture(scope="session")
def device() -> torch.device:
    return resolve_device("auto")


@pytest.fixture(scope="session")
def fashion_batches(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch and the whole test split, converted once as the engine does."""
    ds = data.load("fashion-mnist", allow_download=False)
    train = data.to_device(ds.train.images[:BATCH], device, "sigmoid")
    test = data.to_device(ds.test.images, device, "sigmoid")
    return train, test
