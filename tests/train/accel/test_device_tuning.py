"""The CPU kernel choices change how a model runs, never what it computes."""

from __future__ import annotations

import copy
import platform
from dataclasses import replace

import pytest
import torch
from torch import nn

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.models import create_model, list_models
from aebench.train.accel.allocator import keep_freed_memory
from aebench.train.accel.device_tuning import (
    MaskDropout,
    denormals_flushed,
    flushing_denormals,
    fp32_instead,
    has_amx,
    tuned,
)
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


@pytest.mark.parametrize(
    ("arch", "options", "swaps"),
    [("seed-conv", {}, 1), ("conv", {"depth": "deep"}, 3), ("conv", {"downsample": "stride"}, 0),
     ("conv", {"activation": "elu"}, 0), ("seed-deepconv", {}, 0)],
    ids=["seed-conv", "conv-deep-pool", "conv-stride", "conv-elu", "seed-deepconv"],
)  # fmt: skip
def test_the_conv_path_gives_autograd_s_gradients(
    fashion_mnist: data.Dataset, arch: str, options: dict[str, str], swaps: int
) -> None:
    """Pooling before ReLU, the layout-matching ReLU and the allocator's setting change how a step runs, not its
    numbers: on real images (whose blank backgrounds tie every value in a pooling window) the tuned step's loss
    and every parameter's gradient are autograd's on the same model in the same memory format (channels_last:
    oneDNN sums in another order there, which BatchNorm's batch statistics amplify to about 1% in seed-deepconv's
    gradients, so that layout is the reference). Only a ReLU feeding a max-pool is swapped (ELU would tie
    differently after rounding; seed-deepconv has BatchNorm between)."""
    torch.manual_seed(0)
    plain = create_model(arch, (1, 28, 28), **options).to(memory_format=torch.channels_last)
    tuned_copy = copy.deepcopy(plain)
    x = data.to_device(fashion_mnist.train.images[:64], torch.device("cpu"), "sigmoid")

    def step(model: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), x)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want_loss, want = step(plain)
    with tuned(tuned_copy, torch.device("cpu")):
        assert len(pool_before_relu_swapped(tuned_copy)) == swaps
        got_loss, got = step(tuned_copy)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-6, atol=1e-8)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7)


def pool_before_relu_swapped(model: nn.Module) -> list[int]:
    """Where, in the tuned model, a max-pool now comes straight before a ReLU."""
    found = []
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            pairs = [(seq[i], seq[i + 1]) for i in range(len(seq) - 1)]
            found += [i for i, (a, b) in enumerate(pairs) if type(a) is nn.MaxPool2d and isinstance(b, nn.ReLU)]
    return found


def test_pool_and_relu_commute_exactly_with_ties() -> None:
    """Max-pool then ReLU is ReLU then max-pool, values and gradients, bit for bit, on windows of equal values,
    of negatives only, and of mixed signs."""
    x = torch.tensor([[[[0.0, 0.0, -1.0, -2.0], [0.0, 0.0, -3.0, -1.0], [0.5, 0.5, 2.0, -1.0], [0.5, 0.1, 2.0, 3.0]]]])
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    relu_first = nn.functional.max_pool2d(torch.relu(a), 2)
    pool_first = torch.relu(nn.functional.max_pool2d(b, 2))
    assert torch.equal(relu_first, pool_first)
    g = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    relu_first.backward(g)
    pool_first.backward(g)
    assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad)


def test_bf16_trains_a_conv_model_in_fp32_on_a_cpu_without_amx(fashion_mnist: data.Dataset) -> None:
    """The fixed rule (`fp32_instead`): where it applies, a bf16 run of a conv model computes exactly what its
    fp32 run does and records so; an MLP keeps bf16, and so would a conv model on a CPU with AMX."""
    cpu = torch.device("cpu")
    conv, fc = create_model("conv", (1, 28, 28)), create_model("fc", (1, 28, 28))
    assert fp32_instead(conv, cpu, "bf16") == (not has_amx())
    assert not fp32_instead(fc, cpu, "bf16") and not fp32_instead(conv, cpu, "fp32")
    assert not fp32_instead(conv, torch.device("meta"), "bf16")
    if has_amx():
        pytest.skip("this CPU has AMX: bf16 convolutions are kept")
    base = RunConfig(model=model_spec("seed-conv"), epochs=1, train_size=512, val_fraction=0.0)
    half = run_one(replace(base, precision="bf16"), device="cpu", dataset=fashion_mnist)
    full = run_one(base, device="cpu", dataset=fashion_mnist)
    assert half.metrics["bf16_as_fp32"] == 1 and full.metrics["bf16_as_fp32"] == 0
    assert half.metrics["test_mse"] == full.metrics["test_mse"]


def test_the_allocator_keeps_freed_memory_on_glibc() -> None:
    """The setting takes on glibc (this machine's libc); elsewhere the call says it did nothing."""
    took = keep_freed_memory()
    assert took == (platform.libc_ver()[0] == "glibc")
    assert keep_freed_memory() == took  # idempotent
