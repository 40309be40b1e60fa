"""A model's training floor: only the matrix products a step must do, plus one fused Adam update.

The GEMM shapes come from the model's own layers, recorded by forward hooks on one
batch: each Linear, Conv2d and ConvTranspose2d contributes its forward product, the
product for the input's gradient (not for the first layer, whose input needs none) and
the product for the weight's gradient. A convolution counts as the faster of its im2col
GEMMs (im2col itself left out) and its direct convolutions (torch's convolution and its
backward on channels_last, oneDNN's direct kernels on a CPU), timed here: a floor must be
the fastest this machine does the products, and for a 1-channel input the GEMMs win while
for 32 channels the direct kernels can.

On a CPU each product is timed through torch's `mm` and through oneDNN (`aebench.onednn`)
and the faster counts: a floor must be the fastest this machine can do the work, and on
AMD CPUs torch's fp32 `mm` (MKL) takes half again to twice oneDNN's time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from aebench.train.accel import onednn
from aebench.train.accel.mlp_step import FlatAdam
from aebench.train.device import synchronize
from aebench.train.loop import make_optimizer


@dataclass(frozen=True)
class Gemm:
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


@dataclass(frozen=True)
class Layer:
    """One layer's share of a step: its module, the shapes it saw, whether its input needs a gradient, and its
    products as GEMMs."""

    module: nn.Module
    input_shape: torch.Size
    output_shape: torch.Size
    input_grad: bool
    gemms: tuple[Gemm, ...]


def step_gemms(model: nn.Module, input_shape: tuple[int, ...], batch_size: int) -> list[Gemm]:
    """The GEMMs of one training step at `batch_size`, in the order the step would run them."""
    return [g for layer in step_layers(model, input_shape, batch_size) for g in layer.gemms]


def step_layers(model: nn.Module, input_shape: tuple[int, ...], batch_size: int) -> list[Layer]:
    """The product layers of one training step at `batch_size`, in the order the step would run them."""
    shapes: list[tuple[nn.Module, torch.Size, torch.Size]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: shapes.append((mod, inp[0].shape, out.shape)))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(batch_size, *input_shape, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    layers: list[Layer] = []
    for i, (mod, inp, out) in enumerate(shapes):
        if isinstance(mod, nn.Linear):
            rows, k, n = math.prod(inp[:-1]), mod.in_features, mod.out_features
        elif isinstance(mod, nn.Conv2d):
            rows = out[0] * out[2] * out[3]
            k = mod.in_channels // mod.groups * math.prod(mod.kernel_size)
            n = mod.out_channels
        else:  # a transposed conv is the adjoint of a conv on its input grid
            assert isinstance(mod, nn.ConvTranspose2d)
            rows, k = inp[0] * inp[2] * inp[3], mod.in_channels
            n = mod.out_channels // mod.groups * math.prod(mod.kernel_size)
        gemms = [Gemm(rows, k, n)]  # forward
        if i > 0:
            gemms.append(Gemm(rows, n, k))  # gradient of the input
        gemms.append(Gemm(k, rows, n))  # gradient of the weight
        layers.append(Layer(mod, inp, out, i > 0, tuple(gemms)))
    return layers


def time_floor(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int,
    steps: int,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    sample_steps: int = 30,
) -> dict[str, float]:
    """Seconds for `steps` steps of the floor: median of `repeats` timings of `sample_steps` steps, scaled.

    Scaling a sample keeps `aebench bench` short; the GEMMs of every step are identical,
    so nothing but noise separates a sample from the whole epoch.
    """
    device = next(model.parameters()).device
    layers = step_layers(model, input_shape, batch_size)
    gemms = [g for layer in layers for g in layer.gemms]
    opt: torch.optim.Optimizer
    if device.type == "cpu":
        # The written step's own update: one fused call over one flat buffer, without torch.optim's per-call
        # work (`FlatAdam`); a floor that pays what the engine skips would flatter the engine.
        flat = nn.Parameter(torch.zeros(sum(p.numel() for p in model.parameters()), device=device))
        flat.grad = torch.randn_like(flat) * 1e-3
        opt = FlatAdam(flat, 1e-3, 0.0)
    else:
        params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        opt = make_optimizer(params, 1e-3, 0.0, device)  # the engine's own: fused and capturable on CUDA

    chosen = [_fastest_product(*_operands(g, device, dtype), device) for g in gemms]
    products: list[Callable[[], object]] = [product for product, _ in chosen]
    direct = 0
    at = 0
    for layer in layers:  # a convolution's products: its GEMMs or its direct kernels, the faster
        mine = products[at : at + len(layer.gemms)]
        if isinstance(layer.module, nn.Conv2d | nn.ConvTranspose2d):
            kernels = _direct(layer, device, dtype)
            if _seconds(kernels) < _seconds(*mine):
                products[at : at + len(layer.gemms)] = [kernels, *([_nothing] * (len(layer.gemms) - 1))]
                direct += 1
        at += len(layer.gemms)

    def all_gemms() -> None:
        for product in products:
            product()

    # On CUDA both halves are replayed from CUDA graphs, as the engine's step is: one launch
    # each, so the floor holds the GPU's work and not the host's launch latency.
    gemm_step, adam_step = _replayable(all_gemms, device), _replayable(opt.step, device)
    gemm_only, total = [], []
    for _ in range(2):  # warm-up: first-call allocations and kernel selection
        gemm_step()
        adam_step()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(sample_steps):
            gemm_step()
        synchronize(device)
        mid = time.perf_counter()
        for _ in range(sample_steps):
            adam_step()
        synchronize(device)
        end = time.perf_counter()
        gemm_only.append((mid - start) / sample_steps * steps)
        total.append((end - start) / sample_steps * steps)
    return {
        "floor_s": statistics.median(total),
        "floor_s_min": min(total),
        "floor_s_max": max(total),
        "floor_gemm_s": statistics.median(gemm_only),
        "floor_adam_s": statistics.median(total) - statistics.median(gemm_only),
        "floor_gflop_per_step": sum(g.flops for g in gemms) / 1e9,
        "floor_onednn_gemms": sum(via_onednn for _, via_onednn in chosen),
        "floor_direct_convs": direct,  # convolutions whose direct kernels beat their im2col GEMMs
        "samples": repeats,  # timings behind floor_s and its range
    }


def _operands(g: Gemm, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.randn(g.m, g.k, device=device, dtype=dtype), torch.randn(g.k, g.n, device=device, dtype=dtype),
            torch.empty(g.m, g.n, device=device, dtype=dtype))  # fmt: skip


def _nothing() -> None:
    return None


def _direct(layer: Layer, device: torch.device, dtype: torch.dtype) -> Callable[[], object]:
    """A convolution layer's step products as torch's direct kernels, on channels_last as the engine trains:
    the forward convolution and its backward for the weight (and the input, past the first layer)."""
    mod = layer.module
    assert isinstance(mod, nn.Conv2d | nn.ConvTranspose2d)
    fmt = torch.channels_last
    x = torch.randn(layer.input_shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
    w = mod.weight.detach().to(dtype).contiguous(memory_format=fmt)
    g = torch.randn(layer.output_shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
    transposed = isinstance(mod, nn.ConvTranspose2d)
    extra = list(mod.output_padding) if transposed else [0, 0]
    padding = list(mod.padding) if isinstance(mod.padding, tuple) else [0, 0]
    args = (list(mod.stride), padding, list(mod.dilation), transposed, extra, mod.groups)

    def kernels() -> None:
        torch.ops.aten.convolution(x, w, None, *args)
        torch.ops.aten.convolution_backward(g, x, w, None, *args, [layer.input_grad, True, False])

    return kernels


def _seconds(*fns: Callable[[], object], calls: int = 5, rounds: int = 3) -> float:
    """The median over `rounds` of the time `calls` calls of all of `fns` take."""
    for fn in fns:
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            for fn in fns:
                fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fastest_product(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, device: torch.device, calls: int = 10, rounds: int = 5
) -> tuple[Callable[[], object], bool]:
    """`a @ b` as the faster of torch's `mm` and oneDNN's (True: oneDNN's), timed interleaved.

    Off the CPU, or where oneDNN lacks the dtype, torch's `mm` without timing."""

    def through_torch() -> torch.Tensor:
        return torch.mm(a, b, out=c)

    if device.type != "cpu" or not onednn.available(a.dtype):
        return through_torch, False

    weight = b.t().contiguous()  # oneDNN's (out, in) weight, laid out as the engine's weights are

    def through_onednn() -> torch.Tensor:
        return onednn.linear(a, weight, None)  # the product alone: no copy the engine may make after

    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for via, fn in ((False, through_torch), (True, through_onednn)):
            fn()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            seconds[via].append(time.perf_counter() - start)
    via_onednn = statistics.median(seconds[True]) < statistics.median(seconds[False])
    return (through_onednn if via_onednn else through_torch), via_onednn


def _replayable(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """`fn` as is, or on CUDA captured once (after warm-up on a side stream) and replayed."""
    if device.type != "cuda":

        def call() -> None:
            fn()

        return call
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay
