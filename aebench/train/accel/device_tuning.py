"""Per-device kernel choices the engine makes for a model, without changing what the model computes.

Measured on a 2-core AMD EPYC CPU (torch 2.14.1), one training step at batch 128:

- channels_last: oneDNN's convolutions run on NHWC directly, while NCHW weights and
  activations are reordered on every call: `seed-conv` 5.2 -> 3.0 ms, `seed-deepconv`
  40 -> 22 ms a step.
- glibc's allocator keeps freed memory (`aebench.train.accel.allocator`): a conv step stops
  faulting its activations in afresh, `seed-conv` 9.5 -> 3.2 ms a step.
- max-pooling before ReLU where a ReLU feeds a max-pool: the two commute exactly (the
  largest of four values is positive exactly when the largest of their ReLUs is, and the
  gradient reaches the same element), so the ReLU and its backward touch a quarter of the
  elements: `seed-conv` 3.0 -> 2.55 ms, `conv` medium (pool) 13.6 -> 12.9 ms a fp32 step.
- dropout: `torch.bernoulli_` draws each element on its own (~360 us for 128x512);
  a mask from `torch.rand` < keep-probability is vectorised (~140 us), the same
  distribution and the same 1/keep scaling. About 0.4 s an epoch of `seed-deep`'s 6 dropouts.

On CUDA neither applies: the graph already removes the launch overhead, cuDNN picks its
own layouts, and the fused dropout kernel is fast and graph-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from aebench.train.accel.allocator import keep_freed_memory


class MaskDropout(nn.Dropout):
    """`nn.Dropout` whose mask comes from one vectorised uniform draw (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        if keep == 0.0:
            return x * 0.0
        # Drawn in float32 whatever x is: a bf16 uniform has only 256 levels, which would bias keep.
        mask = torch.rand(x.shape, device=x.device).lt_(keep).to(x.dtype).div_(keep)  # 1/keep or 0
        return x.mul_(mask) if self.inplace else x * mask


class _ReLUFunction(torch.autograd.Function):
    """ReLU whose backward reads the gradient in its output's memory format.

    Why: `threshold_backward` on a channels_last output with an NCHW gradient (what a `Flatten`'s backward
    hands the last encoder ReLU) takes a strided path about 15x slower than with matching layouts (3.7 ms
    against 0.25 ms for 128x16x28x28 on 2 AMD EPYC cores); one copy of the gradient first is cheaper.
    The values are autograd's own: the gradient passes where the output is positive."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        if y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last):
            g = g.contiguous(memory_format=torch.channels_last)
        out: torch.Tensor = torch.ops.aten.threshold_backward(g, y, 0.0)
        return out


class LayoutReLU(nn.ReLU):
    """`nn.ReLU` (not in place) through `_ReLUFunction`; autocast and other devices take torch's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"):
            return torch.relu(x)
        out: torch.Tensor = _ReLUFunction.apply(x)
        return out


def pool_before_relu(model: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """Swap every ReLU that feeds a max-pool in a `Sequential` with that pool, in place; where it swapped.

    Neither holds parameters, so the state dict's keys and values do not move; `pool_after_relu` swaps back."""
    swapped = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            first, second = seq[i], seq[i + 1]
            if type(first) is nn.ReLU and type(second) is nn.MaxPool2d and not second.return_indices:
                seq[i], seq[i + 1] = second, first
                swapped.append((seq, i))
    return swapped


def pool_after_relu(swapped: list[tuple[nn.Sequential, int]]) -> None:
    for seq, i in reversed(swapped):
        seq[i], seq[i + 1] = seq[i + 1], seq[i]


def has_amx() -> bool:
    """Whether this CPU has AMX's bf16 tiles (Linux's cpuinfo flags; False where they cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return any(line.startswith("flags") and " amx_bf16" in line for line in fh)
    except OSError:
        return False


def fp32_instead(model: nn.Module, device: torch.device, precision: str) -> bool:
    """The fixed rule for bf16 on a CPU: a model with convolutions trains in fp32 unless the CPU has AMX.

    Why: without AMX's tiles oneDNN's bf16 convolutions gain little or lose, and autocast pays a cast
    of every activation each way: on a 2-core AMD EPYC (AVX-512 bf16) `seed-deepconv`'s step took 22.5 ms
    in bf16 against 22.7 ms in fp32, `seed-conv`'s epoch 2.51 s against 2.23 s on another EPYC, and
    keeping only the convolutions in fp32 was slower than either (`seed-conv` 3.4 ms against 2.6 ms a
    step). A rule, not a stopwatch, so two runs of one config on one machine compute alike; the run
    records that it trained in fp32 (`bf16_as_fp32`), and `aebench bench` marks its bf16 row.
    """
    return device.type == "cpu" and precision == "bf16" and has_any_conv(model) and not has_amx()


def has_any_conv(model: nn.Module) -> bool:
    """Whether any conv or transposed conv (encoder or decoder) would run faster on channels_last."""
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


@contextmanager
def tuned(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """`model` with the device's kernel choices for the duration of the block, then as it was.

    The caller's model is changed in place (the optimizer keeps its parameters) and given back
    unchanged in layout and modules afterwards, so tuning for training leaves nothing behind.
    """
    if device.type != "cpu":
        yield model
        return
    keep_freed_memory()
    convs = has_any_conv(model)
    if convs:
        model.to(memory_format=torch.channels_last)
    reordered = pool_before_relu(model)
    relus = [m for m in model.modules() if type(m) is nn.ReLU and not m.inplace] if convs else []
    for m in relus:
        m.__class__ = LayoutReLU
    swapped: list[tuple[nn.Module, str, nn.Dropout]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                tuned_child = MaskDropout(child.p, child.inplace)
                tuned_child.train(child.training)
                setattr(parent, name, tuned_child)
                swapped.append((parent, name, child))
    try:
        yield model
    finally:
        for m in relus:
            m.__class__ = nn.ReLU
        pool_after_relu(reordered)
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
        if convs:
            model.to(memory_format=torch.contiguous_format)


def flushing_denormals() -> bool:
    """Whether the CPU flushes denormal floats to zero now: torch can set it but not read it back, so ask the
    arithmetic (a denormal times one is zero only when inputs are flushed)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


@contextmanager
def denormals_flushed(device: torch.device) -> Iterator[bool]:
    """On a CPU, denormal floats flushed to zero for the block, then the setting as it was; yields whether
    they are flushed (False elsewhere, or where the CPU cannot).

    Why: as a run trains, small gradients and Adam moments underflow into denormals, which x86 cores
    handle in microcode: on a 2-core Intel Xeon, `seed-ae` epochs after the first slowed from 1.45 to
    1.89 s without the flush and stayed at 1.45-1.57 s with it. Values this small carry no weight in
    an autoencoder's loss; the run records that it trained so (`flush_denormal`).
    """
    if device.type != "cpu":
        yield False
        return
    before = flushing_denormals()
    flushed = torch.set_flush_denormal(True)
    try:
        yield flushed
    finally:
        torch.set_flush_denormal(before)
