"""The CPU kernel choices change how a model runs, never what it computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from aebench.models.registry import create_model
from aebench.train.accel.device_tuning import MaskDropout, tune_for


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


@pytest.mark.parametrize("arch", ["seed-deep", "seed-deepconv", "seed-conv"])
def test_tuned_model_computes_what_the_model_computes(arch: str) -> None:
    torch.manual_seed(0)
    model = create_model(arch, (1, 28, 28))
    tuned = tune_for(copy.deepcopy(model), torch.device("cpu"))
    assert tune_for(tuned, torch.device("cpu")) is tuned  # idempotent
    x = torch.rand(16, 1, 28, 28)
    model.eval()
    tuned.eval()
    with torch.no_grad():
        torch.testing.assert_close(tuned(x), model(x), rtol=1e-4, atol=1e-5)
    assert not any(type(m) is nn.Dropout for m in tuned.modules())
    convs = [m.weight for m in tuned.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)  # NHWC now
    if arch == "seed-deepconv":  # (with one input channel NCHW and NHWC are the same layout)
        assert not all(w.is_contiguous() for w in convs)
    assert tuned.state_dict().keys() == model.state_dict().keys()  # checkpoints load either way
