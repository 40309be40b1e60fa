"""The CPU kernel choices change how a model runs, never what it computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.models import create_model, list_models
from aebench.train.accel.device_tuning import MaskDropout, denormals_flushed, flushing_denormals, tuned
from aebench.train.engine import run_one


def test_mask_dropout_is_dropout() -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    drop = MaskDropout(0.2)
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.005)  # 200k draws: within 0.5 points
    assert torch.allclose(y[kept].detach(), torch.tensor(1 / 0.8))  # kept values scaled by 1/keep, as nn.Dropout does
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, y.detach())  # gradient flows through the same mask
    drop.eval()
    assert drop(x) is x
    half = MaskDropout(0.2).train()(torch.ones(400, 500, dtype=torch.bfloat16))  # mask drawn in fp32 all the same
    assert half.dtype == torch.bfloat16 and (half != 0).float().mean().item() == pytest.approx(0.8, abs=0.005)
    z = torch.ones(100, 100)
    assert MaskDropout(0.5, inplace=True).train()(z) is z and set(z.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(MaskDropout(0.0).train()(x), x)


@pytest.mark.parametrize("arch", list_models())
def test_tuned_model_computes_what_the_model_computes_and_is_given_back(arch: str) -> None:
    torch.manual_seed(0)
    model = create_model(arch, (1, 28, 28))
    reference = copy.deepcopy(model).eval()
    x = torch.rand(16, 1, 28, 28)
    dropouts = sum(type(m) is nn.Dropout for m in reference.modules())
    with tuned(model, torch.device("cpu")) as tuned_model:
        assert tuned_model is model  # tuned in place: an optimizer built on its parameters keeps them
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
        assert not any(type(m) is nn.Dropout for m in model.modules())
        assert sum(isinstance(m, MaskDropout) for m in model.modules()) == dropouts
        convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)  # NHWC now
        # (with one channel on each side NCHW and NHWC are the same layout)
        if any(w.shape[0] > 1 and w.shape[1] > 1 for w in convs):
            assert not all(w.is_contiguous() for w in convs)
        assert model.state_dict().keys() == reference.state_dict().keys()  # checkpoints load either way
    # given back as it was: the same module types, the usual layout, the same values
    assert [type(m) for m in model.modules()] == [type(m) for m in reference.modules()]
    assert all(p.is_contiguous() for p in model.parameters())
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(got, want), name


def test_tuning_is_undone_when_the_block_raises() -> None:
    model = create_model("seed-deep", (1, 28, 28))
    with pytest.raises(RuntimeError), tuned(model, torch.device("cpu")):
        assert any(isinstance(m, MaskDropout) for m in model.modules())
        raise RuntimeError("training failed")
    assert not any(isinstance(m, MaskDropout) for m in model.modules())


def test_other_devices_are_left_alone() -> None:
    model = create_model("seed-deep", (1, 28, 28))
    before = [type(m) for m in model.modules()]
    with tuned(model, torch.device("meta")) as same:
        assert same is model and [type(m) for m in model.modules()] == before


def test_denormals_are_flushed_while_training_on_a_cpu_and_restored_after() -> None:
    assert not flushing_denormals()  # torch's default: kept
    with denormals_flushed(torch.device("cpu")) as flushed:
        assert flushed == flushing_denormals()  # flushed where the CPU can (every x86 CPU with SSE3 can)
        assert flushed
    assert not flushing_denormals()
    torch.set_flush_denormal(True)  # a caller's own choice is given back too
    try:
        with denormals_flushed(torch.device("cpu")):
            pass
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
    with denormals_flushed(torch.device("meta")) as flushed:
        assert not flushed and not flushing_denormals()


def test_a_cpu_run_records_that_it_flushed_denormals(fashion_mnist: data.Dataset) -> None:
    cfg = RunConfig(model=model_spec("seed-ae"), epochs=1, train_size=256)
    assert run_one(cfg, device="cpu", dataset=fashion_mnist).metrics["flush_denormal"] == 1
    assert not flushing_denormals()  # nothing left behind
