"""Per-device kernel choices the engine makes for a model, without changing what the model computes.

Measured on a 2-core AMD EPYC CPU (torch 2.14.1), one training step at batch 128:

- channels_last: oneDNN's convolutions run on NHWC directly, while NCHW weights and
  activations are reordered on every call: `seed-conv` 5.2 -> 3.0 ms, `seed-deepconv`
  40 -> 22 ms a step.
- dropout: `torch.bernoulli_` draws each element on its own (~360 us for 128x512);
  a mask from `torch.rand` < keep-probability is vectorised (~140 us), the same
  distribution and the same 1/keep scaling. About 0.4 s an epoch of `seed-deep`'s 6 dropouts.

On CUDA neither applies: the graph already removes the launch overhead, cuDNN picks its
own layouts, and the fused dropout kernel is fast and graph-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


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
    convs = has_any_conv(model)
    if convs:
        model.to(memory_format=torch.channels_last)
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
