"""pytest-benchmark: one training step and one test-set inference pass per seed model.

Run `pytest benchmarks --benchmark-only`; timings are compared across commits with
`--benchmark-compare`, never asserted in unit tests.
"""

from __future__ import annotations

import pytest
import torch

from aebench.models.registry import create_model
from aebench.models.zoo import SEED_MODELS
from aebench.train.accel.device_tuning import tuned
from aebench.train.device import synchronize
from aebench.train.loop import training_step


@pytest.mark.parametrize("name", SEED_MODELS)
def test_train_step(
    benchmark: pytest.FixtureRequest, name: str, fashion_batches: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The engine's own step: its device tuning, its optimizer, its written-out MLP step on a
    CPU and its graph replay on CUDA."""
    train, _ = fashion_batches
    device = train.device
    torch.manual_seed(0)
    model = create_model(name, tuple(train.shape[1:])).to(device).train()
    idx = torch.arange(len(train), device=device)
    with training_step(model, train, loss="mse", lr=1e-3, batch_size=len(train)) as step:

        def one() -> None:
            step.runner(idx)
            synchronize(device)  # time the work, not its queueing

        benchmark.group = "train step (batch 128)"  # type: ignore[attr-defined]
        benchmark(one)  # type: ignore[operator]


@pytest.mark.parametrize("name", SEED_MODELS)
def test_inference(
    benchmark: pytest.FixtureRequest, name: str, fashion_batches: tuple[torch.Tensor, torch.Tensor]
) -> None:
    _, test = fashion_batches
    model = create_model(name, tuple(test.shape[1:])).to(test.device)

    @torch.no_grad()
    def infer() -> None:
        for chunk in test.split(1024):
            model(chunk)
        synchronize(test.device)

    benchmark.group = "inference (10,000 test images)"  # type: ignore[attr-defined]
    with tuned(model, test.device):  # the kernel choices the engine measures inference with
        model.eval()
        benchmark(infer)  # type: ignore[operator]
