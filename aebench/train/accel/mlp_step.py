"""A CPU training step for plain MLP autoencoders, with the chain rule written out instead of taped.

Why: at batch 128 on a small CPU, a `seed-ae` step is eleven matrix products and a few
dozen small ops, and autograd and autocast add work of their own to each: a tape, and,
under bf16, weight gradients that come out transposed and reach fp32 through strided
copies. Measured on a 2-core AMD EPYC (torch 2.14.1), `seed-ae` in bf16, epochs
interleaved in one process: the autograd step 0.65 s an epoch, this one 0.54 s, against a
floor (its GEMMs plus one fused Adam update) of 0.36 s.

The step is the one autograd would run, op for op: the product plus bias forward, the
activations' own backward kernels, the loss's own gradient, the same casts under bf16
(weights and activations in bf16, the loss and every gradient that reaches a parameter in
fp32). Its parameters are the model's own, made views of one flat buffer for the step's
lifetime, so a step casts the weights in one copy and updates them with one fused Adam
call; the optimizer's arithmetic is elementwise, so this equals Adam over the separate
tensors. Under bf16 the gradients are written into one bf16 buffer and cast to fp32 in one
copy, not one per parameter: this VM sometimes runs its two vCPUs where data one core
wrote is slow for the other to read, and then the per-parameter casts of freshly written
GEMM outputs took five times as long (18 -> 91 us for 784x400); the one copy brought a
bf16 `seed-ae` epoch in that state from 0.79 s to 0.71 s (0.51 s either way otherwise).

It covers `nn.Linear` layers each followed by at most one ReLU, LeakyReLU, Sigmoid, Tanh
or Identity, and the mse, bce and l1 losses, in an `Autoencoder` or a plain
`nn.Sequential` on flat input (greedy pretraining's layer pairs). Anything else (dropout,
batch norm, ELU, GELU, convolutions, tied weights) keeps the autograd step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aebench.models.base import Autoencoder
from aebench.train.accel import onednn

aten = torch.ops.aten
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity)
LOSSES = ("mse", "bce", "l1")


@dataclass(frozen=True)
class Layer:
    """A Linear layer and the activation that follows it (None: none)."""

    linear: nn.Linear
    act: nn.Module | None


def mlp_layers(model: nn.Module, input_dims: int) -> list[Layer] | None:
    """The model as a chain of Linear layers and activations, or None where it is not that plain.

    `input_dims` is the number of dimensions of one training batch: an `Autoencoder`
    flattens its images itself; a bare `nn.Sequential` must get flat rows, since a Linear
    on images would act on their last axis only.
    """
    if type(model) is Autoencoder:
        if not model.flatten or type(model.encoder) is not nn.Sequential or type(model.decoder) is not nn.Sequential:
            return None
        modules = [*model.encoder, *model.decoder]
    elif type(model) is nn.Sequential and input_dims == 2:
        modules = list(model)
    else:
        return None
    layers: list[Layer] = []
    for module in modules:
        if type(module) is nn.Linear and module.bias is not None:
            layers.append(Layer(module, None))
        elif type(module) in ACTIVATIONS and layers and layers[-1].act is None:
            layers[-1] = Layer(layers[-1].linear, module)
        else:
            return None  # anything else, a Linear without bias, or two activations in a row
    own = [id(t) for layer in layers for t in (layer.linear.weight, layer.linear.bias)]
    params = list(model.parameters())  # each shared parameter once
    if not layers or len(set(own)) != len(own) or set(own) != {id(p) for p in params}:
        return None  # tied weights, or parameters outside the chain: autograd's bookkeeping is needed
    if not all(p.requires_grad for p in params):
        return None  # frozen weights
    return layers


def _hooked(model: nn.Module) -> bool:
    """Whether a hook could change what the model computes or sees: the written step runs none."""
    from torch.nn.modules import module as hooks

    globals_ = (
        hooks._global_forward_hooks, hooks._global_forward_pre_hooks, hooks._global_backward_hooks,
        hooks._global_backward_pre_hooks,
    )  # fmt: skip
    if any(globals_):
        return True
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
            return True
    return any(p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())


def written_layers(model: nn.Module, x: torch.Tensor, loss: str) -> list[Layer] | None:
    """The layers `MLPStep` trains `model` through on `x` with `loss`, or None where it cannot
    (then the autograd step does): CPU only (CUDA replays a graph), fp32 parameters on x's
    device, no hooks."""
    if x.device.type != "cpu" or loss not in LOSSES or _hooked(model):
        return None
    if not all(p.dtype == torch.float32 and p.device == x.device for p in model.parameters()):
        return None  # autograd would refuse mixed dtypes; the flat buffer would hide them
    return mlp_layers(model, x.dim())


def applies(model: nn.Module, x: torch.Tensor, loss: str) -> bool:
    """Whether `train_epochs` trains `model` on `x` with `loss` through `MLPStep`."""
    return written_layers(model, x, loss) is not None


class FlatParams:
    """The parameters as views of one buffer (and their gradients as views of another)."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        first = self.params[0]
        total = sum(p.numel() for p in self.params)
        self.flat = nn.Parameter(torch.empty(total, dtype=first.dtype, device=first.device))
        self.grad = self.flat.grad = torch.zeros_like(self.flat)  # what the optimizer reads
        self.grads: list[torch.Tensor] = []
        self.offsets: list[int] = []  # where each parameter starts in the buffer
        offset = 0
        with torch.no_grad():
            for p in self.params:
                k = p.numel()
                self.flat[offset : offset + k].copy_(p.reshape(-1))
                p.data = self.flat.data[offset : offset + k].view_as(p)
                self.grads.append(self.grad[offset : offset + k].view_as(p))
                self.offsets.append(offset)
                offset += k

    def release(self) -> None:
        """Give every parameter its own storage back (checkpoints and later optimizers expect that)."""
        for p in self.params:
            p.data = p.data.clone()


class FlatAdam(torch.optim.Adam):
    """Fused Adam on the one flat buffer, its step without `torch.optim`'s per-call machinery.

    Why: the bookkeeping around the fused kernel (grouping tensors by device, scopes,
    checks) took about 60 us of a `seed-ae` step's 190 us of Adam on the CPU above. The
    first step runs torch's own code, which creates the state; later ones add one to the
    step count and call the same fused kernel with the same arguments, as torch's own
    fused path does. `torch._fused_adam_` is private: a test holds this class equal, bit
    for bit, to `torch.optim.Adam` over the separate tensors, so a torch upgrade that
    changes the kernel's contract fails that test instead of training differently.
    """

    def __init__(self, flat: nn.Parameter, lr: float, weight_decay: float) -> None:
        super().__init__([flat], lr=lr, weight_decay=weight_decay, fused=True)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        group = self.param_groups[0]
        (p,) = group["params"]
        state = self.state.get(p)
        if closure is not None or not state or p.grad is None or group["amsgrad"] or group["maximize"]:
            loss: float | None = super().step(closure)
            return loss
        beta1, beta2 = group["betas"]
        state["step"].add_(1)
        torch._fused_adam_(
            [p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
            lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
            amsgrad=False, maximize=False,
        )  # fmt: skip
        return None


Forward = Callable[[torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (grad, pre-activation, output)


def activation_fns(act: nn.Module | None) -> tuple[Forward, Backward]:
    """The activation's forward (in place where autograd's backward needs only the output) and
    its own backward kernel, as autograd would call it."""
    if act is None or type(act) is nn.Identity:
        return (lambda z: z), (lambda g, z, out: g)
    if type(act) is nn.ReLU:
        return torch.Tensor.relu_, (lambda g, z, out: aten.threshold_backward(g, out, 0))
    if type(act) is nn.Sigmoid:
        return torch.Tensor.sigmoid_, (lambda g, z, out: aten.sigmoid_backward(g, out))
    if type(act) is nn.Tanh:
        return torch.Tensor.tanh_, (lambda g, z, out: aten.tanh_backward(g, out))
    assert type(act) is nn.LeakyReLU
    slope = act.negative_slope  # its backward reads the pre-activation, so the forward keeps it
    return (lambda z: F.leaky_relu(z, slope)), (lambda g, z, out: aten.leaky_relu_backward(g, z, slope, False))


def loss_and_grad(
    loss: str, out: torch.Tensor, target: torch.Tensor, grad_dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean loss (fp32; `target` is fp32) and its gradient with respect to `out`, as the
    loss's backward gives it (in fp32), then cast to `grad_dtype` as autocast's backward
    casts it; for bce `out` must be fp32 already."""
    if loss == "bce":
        value = F.binary_cross_entropy(out, target)
        grad = aten.binary_cross_entropy_backward(torch.ones_like(value), out, target, None, 1)
    else:
        grad = torch.sub(out, target)  # fp32 (a bf16 `out` is promoted exactly)
        flat = grad.view(-1)
        n = flat.numel()
        if loss == "mse":
            value = torch.vdot(flat, flat).div_(n)
            grad.mul_(2.0 / n)
        else:
            assert loss == "l1"
            value = flat.abs().mean()
            grad.sgn_().div_(n)
    return value, grad.to(grad_dtype)


def affine_fns(
    weight: torch.Tensor, bias: torch.Tensor, act: nn.Module | None, batch: int
) -> tuple[Forward, Forward, Backward]:
    """The layer's product plus bias, the activation that follows it, and the activation's backward.

    Through oneDNN's linear where it is faster (`aebench.onednn`): under bf16 always, its
    bias (and a ReLU) applied as the product is written, with the values `addmm` gives; in
    fp32 for large products. A ReLU fused there leaves the pre-activation unkept, which its
    backward does not need.
    """
    forward, backward = activation_fns(act)
    out_f, in_f = weight.shape
    if weight.dtype == torch.bfloat16:
        through_onednn = onednn.available(weight.dtype)
    else:
        through_onednn = onednn.worth_it(batch, in_f, out_f, weight.dtype)
    if not through_onednn:
        weight_t = weight.t()
        return (lambda h: torch.addmm(bias, h, weight_t)), forward, backward
    if type(act) is nn.ReLU:
        return (lambda h: onednn.linear(h, weight, bias, "relu")), (lambda z: z), backward
    return (lambda h: onednn.linear(h, weight, bias)), forward, backward


def gradient_fns(
    weight: torch.Tensor, weight_grad: torch.Tensor, batch: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor, torch.Tensor], None]]:
    """The layer's input gradient `g @ W` and its weight gradient `g.T @ input` (written into
    `weight_grad`), each through oneDNN where `onednn.worth_it` says so for the step's batch."""
    out_f, in_f = weight.shape
    if onednn.worth_it(batch, out_f, in_f, weight.dtype):
        input_grad: Callable[[torch.Tensor], torch.Tensor] = lambda g: onednn.matmul(g, weight)  # noqa: E731
    else:
        input_grad = lambda g: torch.mm(g, weight)  # noqa: E731
    if onednn.worth_it(out_f, batch, in_f, weight.dtype):

        def weight_grad_into(g: torch.Tensor, inp: torch.Tensor) -> None:
            weight_grad.copy_(onednn.matmul(g.t(), inp))

    else:

        def weight_grad_into(g: torch.Tensor, inp: torch.Tensor) -> None:
            torch.mm(g.t(), inp, out=weight_grad)

    return input_grad, weight_grad_into


@dataclass(frozen=True)
class _Wired:
    """One layer as the step uses it: its products, activation and bias-gradient view."""

    affine: Forward
    forward: Forward
    backward: Backward
    input_grad: Callable[[torch.Tensor], torch.Tensor]
    weight_grad_into: Callable[[torch.Tensor, torch.Tensor], None]
    bias_grad: torch.Tensor


class MLPStep:
    """`step(indices)` for `train_epochs`: forward, backward and one optimizer step on a batch of `x`."""

    def __init__(
        self,
        layers: list[Layer],
        flat: FlatParams,
        x: torch.Tensor,
        *,
        loss: str,
        precision: str,
        batch_size: int,
        optimizer: torch.optim.Optimizer,
        grad_clip: float | None,
        running: torch.Tensor,
    ) -> None:
        self.x = x.reshape(len(x), -1)
        self.loss = loss
        self.low = precision == "bf16"
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.running = running
        self.flat = flat
        position = {id(p): i for i, p in enumerate(flat.params)}
        weights: list[torch.Tensor] = [p.data for p in flat.params]
        grads = flat.grads
        if self.low:
            # One bf16 copy of the weights a step, and one fp32 copy of the bf16 gradients:
            # the layers' weights and gradients are views of these two buffers.
            self.flat_low = torch.empty_like(flat.flat, dtype=torch.bfloat16)
            self.grad_low = torch.empty_like(self.flat_low)
            weights, grads = ([
                buffer[a : a + p.numel()].view_as(p) for a, p in zip(flat.offsets, flat.params, strict=True)
            ] for buffer in (self.flat_low, self.grad_low))  # fmt: skip
        batch = min(batch_size, len(x))
        self.layers: list[_Wired] = []
        for layer in layers:
            w, b = position[id(layer.linear.weight)], position[id(layer.linear.bias)]
            fns = affine_fns(weights[w], weights[b], layer.act, batch)
            self.layers.append(_Wired(*fns, *gradient_fns(weights[w], grads[w], batch), grads[b]))

    @torch.no_grad()
    def __call__(self, idx: torch.Tensor) -> None:
        target = torch.index_select(self.x, 0, idx)
        if self.low:
            self.flat_low.copy_(self.flat.flat)
        h = target.to(torch.bfloat16) if self.low else target
        saved = []  # (input, pre-activation, output) of each layer
        for layer in self.layers:
            z = layer.affine(h)
            out = layer.forward(z)
            saved.append((h, z, out))
            h = out
        out = h.float() if self.low and self.loss == "bce" else h
        value, g = loss_and_grad(self.loss, out, target, h.dtype)
        for i in range(len(self.layers) - 1, -1, -1):
            layer, (inp, z, out) = self.layers[i], saved[i]
            g = layer.backward(g, z, out)
            layer.weight_grad_into(g, inp)
            torch.sum(g, 0, out=layer.bias_grad)
            if i > 0:
                g = layer.input_grad(g)
        if self.low:  # computed in bf16, then cast, as autograd does under autocast: here in one copy
            self.flat.grad.copy_(self.grad_low)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_([self.flat.flat], self.grad_clip)
        self.optimizer.step()
        self.running.add_(value, alpha=len(idx))


@contextmanager
def flat_parameters(model: nn.Module) -> Iterator[FlatParams]:
    """The model's parameters as views of one buffer while the block runs; their own storage after."""
    flat = FlatParams(list(model.parameters()))
    try:
        yield flat
    finally:
        flat.release()
