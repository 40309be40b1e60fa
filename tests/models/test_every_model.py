"""What every registered model must do, parametrized over `list_models()`: a new model needs no new test.

Checkpoints rebuild it, the written MLP step takes it exactly when it is a plain MLP (and then
computes autograd's step), and where it can share a stack, a stack trains it as runs alone would.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.models import create_model, list_models
from aebench.train import checkpoint
from aebench.train.accel.mlp_step import applies
from aebench.train.loop import train_epochs
from aebench.train.stacked import stackable, train_stacked

SHAPE = (1, 28, 28)
# Plain MLPs (Linear layers, ReLU-like activations, no batch norm or dropout): the written step's domain.
WRITTEN = {"seed-ae", "seed-simple", "seed-flexible", "fc"}
# No batch norm or dropout: vmap batches them exactly.
STACKABLE = {"seed-ae", "seed-simple", "seed-flexible", "seed-conv", "fc", "conv"}


@pytest.fixture(scope="module")
def images(fashion_mnist: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    cpu = torch.device("cpu")
    return (
        data.to_device(fashion_mnist.train.images[:256], cpu, "sigmoid"),
        data.to_device(fashion_mnist.test.images[:128], cpu, "sigmoid"),
    )


def test_the_tables_name_registered_models() -> None:
    assert WRITTEN <= set(list_models()) and STACKABLE <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    cfg = RunConfig(model=model_spec(name), seed=3)
    torch.manual_seed(cfg.seed)
    model = create_model(name, SHAPE, **cfg.model.builder_options())
    for p in model.parameters():  # weights no fresh model has: a loader that ignored them would fail
        p.data.add_(0.01)
    path = checkpoint.save(tmp_path, cfg, model)
    loaded_cfg, loaded = checkpoint.load(path)
    assert loaded_cfg == cfg and type(loaded) is type(model)
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.parametrize("name", list_models())
def test_written_step_takes_plain_mlps_and_computes_autograds_step(
    name: str, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, _ = images
    torch.manual_seed(0)
    model = create_model(name, SHAPE)
    assert applies(model, x, "mse") == (name in WRITTEN)
    if name not in WRITTEN:
        return
    autograd_model = copy.deepcopy(model)
    runs = []
    for m, written in ((model, True), (autograd_model, False)):
        runs.append(train_epochs(m, x, None, loss="mse", lr=1e-3, batch_size=64, epochs=1,
                                 generator=torch.Generator().manual_seed(0), written_step=written))  # fmt: skip
    assert runs[0][0].train_loss == pytest.approx(runs[1][0].train_loss, rel=1e-5)
    for p, q in zip(model.parameters(), autograd_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", list_models())
def test_stacked_where_the_model_allows_it(name: str, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, x_test = images
    cfg = RunConfig(model=model_spec(name))

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(name, SHAPE)

    assert stackable(cfg, build(0)) == (name in STACKABLE)
    if name not in STACKABLE:
        return
    alone = []
    for seed in (0, 1):
        model = build(seed)
        train_epochs(model, x, x_test, loss="mse", lr=1e-3, batch_size=64, epochs=1,
                     generator=torch.Generator().manual_seed(seed))  # fmt: skip
        alone.append(model)
    stacked = [build(0), build(1)]
    train_stacked(stacked, x, x_test, losses=["mse"] * 2, lrs=[1e-3] * 2, batch_size=64, epochs=1,
                  generators=[torch.Generator().manual_seed(s) for s in (0, 1)])  # fmt: skip
    for a, b in zip(alone, stacked, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5)
