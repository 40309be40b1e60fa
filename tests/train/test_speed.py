"""Every run's speed is one model of its config trained alone, whether it trained alone or in a stack."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.models.base import Autoencoder
from aebench.train import engine
from aebench.train.engine import run_one, run_stack
from aebench.train.speed import WINDOWS, solo_speed, window_steps


@pytest.fixture
def speed_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Autoencoder, RunConfig]]:
    """Each model `solo_speed` timed, with its config: the spy sees where each run's speed came from."""
    calls: list[tuple[Autoencoder, RunConfig]] = []
    real = engine.solo_speed

    def spied(model: Autoencoder, config: RunConfig, x: torch.Tensor, cuda_graph: bool = True) -> dict[str, Any]:
        calls.append((model, config))
        return real(model, config, x, cuda_graph)

    monkeypatch.setattr(engine, "solo_speed", spied)
    return calls


def test_a_stacked_run_records_its_solo_speed_and_the_stacks_own(
    fashion_mnist: data.Dataset, speed_calls: list[tuple[Autoencoder, RunConfig]]
) -> None:
    configs = [
        RunConfig(model=model_spec("seed-ae"), epochs=2, train_size=1024, seed=s, val_fraction=0.0) for s in (0, 1)
    ]
    results = run_stack(configs, device="cpu", dataset=fashion_mnist)
    assert [(m, c) for m, c in speed_calls] == [(r.model, r.config) for r in results]  # type: ignore[union-attr]
    for r in results:
        assert not isinstance(r, Exception)
        m = r.metrics
        assert m["stack_size"] == 2 and m["timed_steps"] == WINDOWS * window_steps(1024, 128) == 10
        assert m["stack_epoch_seconds"] > 0 and m["stack_samples_per_s"] > 0
        # the stack's figure counts both models' images; the run's own is one model's, from its own windows
        assert m["stack_samples_per_s"] == pytest.approx(2 * 1024 / m["stack_epoch_seconds"])
        assert m["epoch_seconds"] == pytest.approx(1024 / m["train_samples_per_s"])
        assert m["engine_step"] == "written"  # timed on the engine's own path for a plain MLP on a CPU


def test_a_solo_run_has_no_stack_figures(
    fashion_mnist: data.Dataset, speed_calls: list[tuple[Autoencoder, RunConfig]]
) -> None:
    cfg = RunConfig(model=model_spec("seed-ae"), epochs=1, train_size=512)
    m = run_one(cfg, device="cpu", dataset=fashion_mnist).metrics
    assert len(speed_calls) == 1 and m["stack_size"] == 1
    assert "stack_samples_per_s" not in m and "stack_epoch_seconds" not in m


@pytest.mark.parametrize(("arch", "step", "path"), [("seed-ae", "auto", "written"), ("seed-ae", "autograd", "autograd"),
                                                    ("seed-conv", "auto", "autograd")])  # fmt: skip
def test_the_engine_path_is_recorded_and_autograd_can_be_asked_for(
    fashion_mnist: data.Dataset, arch: str, step: str, path: str
) -> None:
    cfg = RunConfig(model=model_spec(arch), epochs=1, train_size=512, step=step)
    m = run_one(cfg, device="cpu", dataset=fashion_mnist).metrics
    assert m["engine_step"] == path
    # seed-ae's 784x400 products at batch 128 are past oneDNN's threshold (fp32, CPU), seed-conv has none
    assert m["onednn"] == int(arch == "seed-ae" and torch.backends.mkldnn.is_available())


def test_the_measurement_leaves_the_trained_model_alone(fashion_mnist: data.Dataset) -> None:
    cfg = RunConfig(model=model_spec("seed-ae"), epochs=1, train_size=512)
    model = run_one(cfg, device="cpu", dataset=fashion_mnist).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = data.to_device(fashion_mnist.train.images[:512], torch.device("cpu"), "sigmoid")
    figures = solo_speed(model, cfg, x)
    assert figures["train_samples_per_s_min"] <= figures["train_samples_per_s"] <= figures["train_samples_per_s_max"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_small_training_sets_get_short_windows() -> None:
    assert window_steps(60_000, 128) == 10  # 469 steps an epoch: full windows
    assert window_steps(4096, 128) == 8  # 32 steps: a quarter
    assert window_steps(256, 128) == 2  # 2 steps: never below 2
