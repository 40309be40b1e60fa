"""Stacked runs: K same-shape configs trained as one model with stacked weights (torch.func.vmap).

Every run keeps its own initialisation (built under its own seed), its own shuffle (its
own generator), its own learning rate, weight decay and loss, and Adam is elementwise,
so a stacked run computes what the K independent runs compute, in batched matrix
products that cost one kernel launch instead of K. Runs with BatchNorm (running
statistics are mutated in place) or dropout (random per call) are not stacked, and
neither are runs with gradient clipping (a norm over each run's own gradients), a
learning-rate schedule, greedy pretraining or early stopping (each run stops at its own epoch).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from aebench.config import RunConfig
from aebench.errors import Diverged
from aebench.train.accel.cuda_graph import StepRunner
from aebench.train.accel.device_tuning import denormals_flushed
from aebench.train.device import synchronize
from aebench.train.loop import (
    LOSSES,
    PROGRESS_EVERY,
    EpochRecord,
    Progress,
    _evaluate,
    autocast_for,
    divergence,
    make_optimizer,
)

# The most cells trained as one stack. On an H200 32 seed-ae runs took 0.44 s an epoch against
# 0.24 s for 12, so bigger stacks buy little, while their memory grows with every run and one
# failure (out of memory, say) sends the whole stack back to one-by-one training.
MAX_STACK = 32


def stackable(config: RunConfig, model: nn.Module) -> bool:
    """Whether this run can share a stack: nothing in it that vmap cannot batch exactly."""
    m = config.model
    if config.grad_clip is not None or m.pretrain == "greedy" or config.lr_schedule != "none":
        return False
    if config.patience is not None or model.closed_form:  # each run stops on its own plateau
        return False
    return not any(isinstance(x, nn.modules.batchnorm._BatchNorm | nn.Dropout | nn.Dropout2d) for x in model.modules())


def stack_key(config: RunConfig) -> str:
    """Runs with the same key share every shape and differ only in their seed, learning rate,
    weight decay or loss, so they can be trained as one stack."""
    return replace(config, seed=0, lr=1e-3, weight_decay=0.0, loss="mse").run_id


class StackedAdam:
    """Adam (L2 weight decay, as `torch.optim.Adam`) over stacked parameters whose leading
    dimension is the run, each run with its own learning rate and weight decay.

    `torch.optim.Adam` takes one learning rate per tensor, and a stacked tensor holds every
    run. All state, the step count included, lives on the device, so a step can be
    captured in a CUDA graph.
    """

    def __init__(
        self, params: Sequence[torch.Tensor], lrs: Sequence[float], weight_decays: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
    ) -> None:  # fmt: skip
        self.params = list(params)
        device = self.params[0].device
        self.lrs = torch.tensor(lrs, device=device, dtype=torch.float64)
        self.weight_decays = torch.tensor(weight_decays, device=device)
        self.decay = any(w != 0 for w in weight_decays)
        self.betas, self.eps = betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros((), device=device, dtype=torch.float64)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        self.steps.add_(1)
        # The scalars in float64, as torch.optim.Adam computes them (on CPU this matched its updates
        # exactly in the tests; elsewhere up to rounding).
        step_size = (self.lrs / (1 - beta1**self.steps)).float()  # (K,)
        bias2_sqrt = (1 - beta2**self.steps).sqrt().float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            assert p.grad is not None
            per_run = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad.addcmul(p, self.weight_decays.view(per_run)) if self.decay else p.grad
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            p.addcdiv_(m * step_size.view(per_run), denom, value=-1)


def train_stacked(
    models: Sequence[nn.Module],
    x_train: torch.Tensor,
    x_test: torch.Tensor | None,
    *,
    losses: Sequence[str],
    lrs: Sequence[float],
    batch_size: int,
    epochs: int,
    generators: Sequence[torch.Generator],
    weight_decays: Sequence[float] | None = None,
    precision: str = "fp32",
    progress: Progress | None = None,
    cuda_graph: bool = True,
    x_val: torch.Tensor | None = None,
) -> list[list[EpochRecord] | Diverged]:
    """Train `models` (same architecture, different weights) together, run i with loss `losses[i]`,
    learning rate `lrs[i]` and its own shuffle; their trained weights are written back into them.

    Returns, per model, its epoch records (`seconds` is the stack's epoch time) or, for a run
    whose loss stopped being finite, its `Diverged`. A diverged run cannot touch the others
    (its gradients and Adam state are its own slices), so the stack trains on without it: a
    learning-rate sweep keeps the rates that work."""
    device = x_train.device
    k, n = len(models), len(x_train)
    weight_decays = list(weight_decays or [0.0] * k)
    params, buffers = stack_module_state(list(models))
    skeleton = copy.deepcopy(models[0]).to("meta")

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(skeleton, (p, b), (x,))
        return out

    batched = torch.vmap(one)
    opt: torch.optim.Optimizer | StackedAdam
    if len(set(lrs)) == 1 and len(set(weight_decays)) == 1:  # one fused kernel, as an unstacked run uses
        opt = make_optimizer(list(params.values()), lrs[0], weight_decays[0], device)
    else:
        opt = StackedAdam(list(params.values()), lrs, weight_decays)
    by_loss = {
        name: torch.tensor([i for i, run_loss in enumerate(losses) if run_loss == name], device=device)
        for name in sorted(set(losses))
    }
    autocast = autocast_for(device, precision)
    running = torch.zeros(k, device=device)  # lives as long as the step: a CUDA graph writes to it

    def step(idx: torch.Tensor) -> None:
        xb = x_train[idx]  # (K, b, ...): each run's own batch
        with autocast:
            out = batched(params, buffers, xb).float()
        if len(by_loss) == 1:
            per_run = LOSSES[losses[0]](out, xb, reduction="none").flatten(1).mean(1)
        else:
            per_run = torch.zeros(k, device=device)
            for name, rows in by_loss.items():
                part = LOSSES[name](out[rows], xb[rows], reduction="none").flatten(1).mean(1)
                per_run = per_run.index_add(0, rows, part)
        opt.zero_grad(set_to_none=True)
        per_run.sum().backward()  # run i's loss depends only on run i's weights
        opt.step()
        running.add_(per_run.detach() * idx.shape[1])

    steps = math.ceil(n / batch_size)
    runner = StepRunner(step, (k, min(batch_size, n)), device, graph=cuda_graph)
    records: list[list[EpochRecord]] = [[] for _ in models]
    diverged: dict[int, Diverged] = {}
    with denormals_flushed(device):  # as a run alone trains (`aebench.train.loop.training_step`)
        for epoch in range(1, epochs + 1):
            running.zero_()
            synchronize(device)
            start = time.perf_counter()
            orders = torch.stack([torch.randperm(n, generator=g, device=device) for g in generators])  # (K, n)
            for step_no, idx in enumerate(orders.split(batch_size, dim=1), 1):
                runner(idx)
                if progress is not None and step_no % PROGRESS_EVERY == 0:
                    progress((epoch - 1) * steps + step_no, steps * epochs, f"stack of {k}: epoch {epoch}/{epochs}")
            synchronize(device)
            seconds = time.perf_counter() - start
            _write_back(models, params, buffers)
            train_losses = (running / n).tolist()
            for i, model in enumerate(models):
                if i in diverged:
                    continue
                test_loss = _evaluate(model, x_test, LOSSES[losses[i]]) if x_test is not None else math.nan
                if (blown := divergence(epoch, train_losses[i], test_loss, x_test is not None)) is not None:
                    diverged[i] = blown
                    continue
                val_loss = _evaluate(model, x_val, LOSSES[losses[i]]) if x_val is not None else math.nan
                records[i].append(
                    EpochRecord(epoch, train_losses[i], test_loss, seconds, lrs[i], runner.captured, val_loss)
                )
            if len(diverged) == k:
                break
    return [diverged.get(i, r) for i, r in enumerate(records)]


def _write_back(models: Sequence[nn.Module], params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for i, model in enumerate(models):
            model.load_state_dict({**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in buffers.items()}})
