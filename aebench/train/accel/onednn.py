"""oneDNN's matrix products on the CPU, for the products where they beat torch's default.

Why: on x86, torch sends fp32 `mm` and `addmm` to MKL, which on AMD CPUs takes a slower
code path, while oneDNN (which torch already uses for bf16) runs its AVX-512 kernels there.
Measured on a 2-core AMD EPYC (torch 2.14.1), fp32, batch 128, interleaved: 128x784 by
784x400 forward 431 -> 242 us, its input gradient 444 -> 194 us, its weight gradient 375 ->
230 us (copy into the gradient buffer included). For small products oneDNN's per-call setup
dominates (128x400 by 400x20: 18 us through torch, 23-45 us through oneDNN); at 128x256
by 256x128 (4.2M multiply-adds) oneDNN still wins the forward product (31 against 44 us)
and ties the weight gradient, so products of at least `MIN_MACS` multiply-adds go to it.
The written MLP step (`aebench.mlp_step`) wires them in, and `linears` lends the same to
a model's `nn.Linear` layers on the autograd step.

oneDNN's linear also adds the bias, and can apply a ReLU, as it writes the product: under
bf16 that is the fp32 accumulator plus bias rounded once, what `addmm` gives, minus
`addmm`'s separate passes over the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MIN_MACS = 4_000_000  # below this an fp32 product stays with torch (see the module docstring)


def available(dtype: torch.dtype) -> bool:
    """Whether this torch has oneDNN's linear for `dtype` on this CPU, and the user has not
    switched oneDNN off (`torch.backends.mkldnn.enabled`)."""
    mkldnn = torch.backends.mkldnn
    if not (mkldnn.is_available() and mkldnn.enabled and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    if dtype == torch.bfloat16:  # its bf16 path needs AVX-512 or AVX-NE-CONVERT
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return supported is not None and bool(supported())
    return dtype == torch.float32


def linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "none") -> torch.Tensor:
    """`act(h @ weight.T + bias)` in one oneDNN call; `act` is "none" or "relu"."""
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(h, weight, bias, act, [], "")
    return out


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` through oneDNN. `b` is read through its strides (a transposed view costs
    nothing); `a` is copied first where it is not contiguous, as a weight gradient's `g.T` is."""
    return linear(a, b.t(), None)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` through oneDNN where `worth_it` says so, through torch otherwise."""
    return matmul(a, b) if worth_it(a.shape[0], a.shape[1], b.shape[1], a.dtype) else torch.mm(a, b)


def worth_it(m: int, k: int, n: int, dtype: torch.dtype) -> bool:
    """Whether an (m, k) by (k, n) product of `dtype` should go to oneDNN rather than torch's default.

    A fixed rule rather than a timing at run time: the two libraries round differently in
    the last bits, and a choice made by a stopwatch could differ between two runs of the
    same seed. The rule was measured on an AMD CPU only; on Intel CPUs, where MKL is tuned,
    the two may be closer (the floor takes the faster of the two either way, so
    `aebench bench` shows what the rule costs there).
    """
    return dtype == torch.float32 and m * k * n >= MIN_MACS and available(dtype)


class _LinearFunction(torch.autograd.Function):
    """`x @ weight.T + bias` on 2-D fp32 `x`, each of its three products through oneDNN where
    `worth_it` says so and through torch otherwise."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable  # the oneDNN op has no derivative of its own
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = mm(g, weight)
        if ctx.needs_input_grad[1]:
            grad_w = mm(g.t(), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """`nn.Linear` whose large fp32 products on the CPU go to oneDNN: the same parameters and
    the same values to rounding. Anything else (bf16 or autocast, CUDA, small products)
    takes `F.linear` as `nn.Linear` would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if (
            x.device.type != "cpu"
            or x.shape[-1] != self.in_features  # F.linear says what is wrong with the shape
            or x.dtype != self.weight.dtype
            or torch.is_autocast_enabled("cpu")
            or not worth_it(rows, self.in_features, self.out_features, x.dtype)
        ):
            return F.linear(x, self.weight, self.bias)
        out: torch.Tensor = _LinearFunction.apply(x.reshape(rows, self.in_features), self.weight, self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)


@contextmanager
def linears(model: nn.Module) -> Iterator[nn.Module]:
    """`model` with its `nn.Linear` layers computing as `Linear` while the block runs; plain after.

    The layers change class in place, so parameters, hooks, optimizer state and checkpoints
    see the same objects; leaving the block gives back exactly the `nn.Linear` they were.
    """
    changed = [m for m in model.modules() if type(m) is nn.Linear]
    for m in changed:
        m.__class__ = Linear
    try:
        yield model
    finally:
        for m in changed:
            m.__class__ = nn.Linear
