"""pytest-benchmark: one training step and one test-set inference pass per seed model.

Run `pytest benchmarks --benchmark-only`; timings are compared across commits with
`--benchmark-compare`, never asserted in unit tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from aebench.bench import SEED_MODELS
from aebench.cuda_graph import StepRunner
from aebench.device_tuning import tune_for
from aebench.engine import make_optimizer, synchronize
from aebench.registry import create_model


def _step_fn(name: str, batch: torch.Tensor) -> Callable[[], None]:
    """The engine's step: its device tuning, its optimizer and, on CUDA, its graph replay."""
    device = batch.device
    torch.manual_seed(0)
    model = tune_for(create_model(name, tuple(batch.shape[1:])).to(device).train(), device)
    opt = make_optimizer(model.parameters(), 1e-3, 0.0, device)
    idx = torch.arange(len(batch), device=device)

    def one(i: torch.Tensor) -> None:
        xb = batch[i]
        loss = F.mse_loss(model(xb), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    runner = StepRunner(one, tuple(idx.shape), device)

    def step() -> None:
        runner(idx)
        synchronize(device)  # time the work, not its queueing

    return step


@pytest.mark.parametrize("name", SEED_MODELS)
def test_train_step(
    benchmark: pytest.FixtureRequest, name: str, fashion_batches: tuple[torch.Tensor, torch.Tensor]
) -> None:
    train, _ = fashion_batches
    benchmark.group = "train step (batch 128)"  # type: ignore[attr-defined]
    benchmark(_step_fn(name, train))  # type: ignore[operator]


@pytest.mark.parametrize("name", SEED_MODELS)
def test_inference(
    benchmark: pytest.FixtureRequest, name: str, fashion_batches: tuple[torch.Tensor, torch.Tensor]
) -> None:
    _, test = fashion_batches
    model = tune_for(create_model(name, tuple(test.shape[1:])).to(test.device), test.device).eval()

    @torch.no_grad()
    def infer() -> None:
        for chunk in test.split(1024):
            model(chunk)
        synchronize(test.device)

    benchmark.group = "inference (10,000 test images)"  # type: ignore[attr-defined]
    benchmark(infer)  # type: ignore[operator]
