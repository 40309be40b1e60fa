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
from aebench.engine import synchronize
from aebench.registry import create_model


def _step_fn(name: str, batch: torch.Tensor) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_model(name, tuple(batch.shape[1:])).to(batch.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=batch.device.type in ("cpu", "cuda"))

    def step() -> None:
        loss = F.mse_loss(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(batch.device)  # time the work, not its queueing

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
    model = create_model(name, tuple(test.shape[1:])).to(test.device).eval()

    @torch.no_grad()
    def infer() -> None:
        for chunk in test.split(1024):
            model(chunk)
        synchronize(test.device)

    benchmark.group = "inference (10,000 test images)"  # type: ignore[attr-defined]
    benchmark(infer)  # type: ignore[operator]
