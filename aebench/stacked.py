"""Stacked runs: K same-shape configs trained as one model with stacked weights (torch.func.vmap).

Every run keeps its own initialisation (built under its own seed) and its own shuffle
(its own generator), and Adam is elementwise, so a stacked run computes what the K
independent runs compute, in batched matrix products that cost one kernel launch
instead of K. Runs with BatchNorm (running statistics are mutated in place) or dropout
(random per call) are not stacked, and neither are runs with gradient clipping (a norm
over each run's own gradients) or greedy pretraining.
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
from aebench.engine import LOSSES, EpochRecord, Progress, _evaluate, _make_optimizer, batches, synchronize
from aebench.errors import Diverged


def stackable(config: RunConfig, model: nn.Module) -> bool:
    """Whether this run can share a stack: nothing in it that vmap cannot batch exactly."""
    m = config.model
    if config.grad_clip is not None or m.pretrain == "greedy" or config.lr_schedule != "none":
        return False
    return not any(isinstance(x, nn.modules.batchnorm._BatchNorm | nn.Dropout | nn.Dropout2d) for x in model.modules())


def stack_key(config: RunConfig) -> str:
    """Runs with the same key differ only in their seed and can be trained as one stack."""
    return replace(config, seed=0).run_id


def train_stacked(
    models: Sequence[nn.Module],
    x_train: torch.Tensor,
    x_test: torch.Tensor | None,
    *,
    loss: str,
    lr: float,
    batch_size: int,
    epochs: int,
    generators: Sequence[torch.Generator],
    weight_decay: float = 0.0,
    precision: str = "fp32",
    progress: Progress | None = None,
) -> list[list[EpochRecord]]:
    """Train `models` (same architecture, different weights) together; their trained weights are
    written back into them. Returns each model's epoch records; `seconds` is the stack's epoch time."""
    device = x_train.device
    loss_fn = LOSSES[loss]
    params, buffers = stack_module_state(list(models))
    skeleton = copy.deepcopy(models[0]).to("meta")

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, (p, b), (x,))

    batched = torch.vmap(one)
    opt = _make_optimizer(list(params.values()), lr, weight_decay, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    k, n = len(models), len(x_train)
    steps = math.ceil(n / batch_size)
    records: list[list[EpochRecord]] = [[] for _ in models]
    for epoch in range(1, epochs + 1):
        running = torch.zeros(k, device=device)
        synchronize(device)
        start = time.perf_counter()
        orders = [list(batches(n, batch_size, g, device)) for g in generators]
        for step in range(steps):
            idx = torch.stack([order[step] for order in orders])  # (K, b): each run's own batch
            xb = x_train[idx]
            with autocast:
                out = batched(params, buffers, xb)
            per_run = loss_fn(out.float(), xb, reduction="none").flatten(1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_run.sum().backward()  # run i's loss depends only on run i's weights
            opt.step()
            running += per_run.detach() * idx.shape[1]
            if progress is not None and (step + 1) % 25 == 0:
                progress((epoch - 1) * steps + step + 1, steps * epochs, f"stack of {k}: epoch {epoch}/{epochs}")
        synchronize(device)
        seconds = time.perf_counter() - start
        _write_back(models, params, buffers)
        train_losses = (running / n).tolist()
        for i, model in enumerate(models):
            test_loss = _evaluate(model, x_test, loss_fn) if x_test is not None else math.nan
            if not math.isfinite(train_losses[i]) or (x_test is not None and not math.isfinite(test_loss)):
                raise Diverged(epoch, train_losses[i] if not math.isfinite(train_losses[i]) else test_loss)
            records[i].append(EpochRecord(epoch, train_losses[i], test_loss, seconds, opt.param_groups[0]["lr"]))
    return records


def _write_back(models: Sequence[nn.Module], params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for i, model in enumerate(models):
            model.load_state_dict({**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in buffers.items()}})
