"""The training loop: one step (autograd or the written-out MLP step, CUDA graph or eager) and the epochs.

Kept apart from `engine` (one run from config to measurements) so that greedy pretraining and
stacked training, which build on the loop, do not depend on the run-level code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aebench.errors import Diverged
from aebench.train.accel import mlp_step, onednn
from aebench.train.accel.cuda_graph import StepRunner
from aebench.train.accel.device_tuning import denormals_flushed, fp32_instead, tuned
from aebench.train.device import synchronize

# progress(completed_steps, total_steps, message)
Progress = Callable[[int, int, str], None]

EVAL_BATCH = 1024  # evaluation has no gradient state, so bigger batches are just faster
PROGRESS_EVERY = 25  # steps between progress callbacks: enough for a smooth bar, cheap

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
}


def batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Shuffled index batches over n items, the last one partial (DataLoader's drop_last=False)."""
    perm = torch.randperm(n, generator=generator, device=device)
    yield from perm.split(batch_size)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    test_loss: float
    seconds: float
    lr: float
    cuda_graph: bool = False  # whether this epoch's full batches were replayed from a CUDA graph
    val_loss: float = math.nan  # on the validation holdout (NaN without one): what early stopping watches


@dataclass(frozen=True)
class Stopping:
    """Early stopping on the validation loss: stop after `patience` epochs without a relative improvement of
    `min_delta`, and give back the best epoch's weights. Only the validation loss is looked at."""

    patience: int
    min_delta: float = 0.001

    def improved(self, loss: float, best: float) -> bool:
        return loss < best * (1.0 - self.min_delta)


def _evaluate(model: nn.Module, x: torch.Tensor, loss_fn: Callable[..., torch.Tensor]) -> float:
    model.eval()
    total = torch.zeros((), device=x.device)
    with torch.no_grad():
        for chunk in x.split(EVAL_BATCH):
            total += loss_fn(model(chunk), chunk, reduction="sum")
    return float(total) / x.numel()


def divergence(epoch: int, train_loss: float, test_loss: float, tested: bool) -> Diverged | None:
    """The run's `Diverged` if its train loss (or, when it was tested, its test loss) is not finite."""
    if not math.isfinite(train_loss):
        return Diverged(epoch, train_loss)
    if tested and not math.isfinite(test_loss):
        return Diverged(epoch, test_loss)
    return None


def _schedule(opt: torch.optim.Optimizer, name: str, epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if name == "step":  # divide by 10 at each third of training
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    return None


def make_optimizer(params: Any, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """One fused kernel per step on CPU and CUDA (torch >= 2.4); foreach elsewhere.

    On CUDA the optimizer is always capturable (its step count and learning rate live on
    the device), with or without a CUDA graph, so graph and eager runs do the same arithmetic.
    """
    fused = device.type in ("cpu", "cuda")
    if device.type == "cuda":
        lr_t = torch.tensor(lr, device=device)  # a scheduler fills it in place: the graph sees the change
        return torch.optim.Adam(params, lr=lr_t, weight_decay=weight_decay, fused=True, capturable=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def autocast_for(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast (or a disabled one); no cast cache, which a CUDA graph capture cannot hold."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def current_lr(opt: torch.optim.Optimizer) -> float:
    """The learning rate as set: a device tensor (CUDA) holds it in float32, so it is read back
    to float32's 7 significant digits (1e-3, not 0.0010000000474974513)."""
    lr = opt.param_groups[0]["lr"]
    return float(f"{float(lr):.7g}") if isinstance(lr, torch.Tensor) else float(lr)


@dataclass
class TrainingStep:
    """What `training_step` yields: call `runner(indices)` once a batch."""

    runner: StepRunner
    optimizer: torch.optim.Optimizer
    running: torch.Tensor  # the summed batch losses since it was last zeroed, on the device
    step: str = "autograd"  # the engine path: "written" (the MLP chain rule written out) or "autograd"
    onednn: bool = False  # whether some of the step's products go through oneDNN (CPU)
    flush_denormal: bool = False  # whether denormals were flushed to zero while it ran (CPU)
    bf16_as_fp32: bool = False  # whether bf16 was asked and the step trains in fp32 by the CPU rule


def onednn_products(model: nn.Module, batch: int, precision: str, written: bool) -> bool:
    """Whether the step takes any product through oneDNN: the rule `onednn.worth_it` (fp32, large products)
    on either path, and under bf16 every product of the written step where oneDNN has bf16."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if written and precision == "bf16":
        return bool(linears) and onednn.available(torch.bfloat16)
    if precision != "fp32":
        return False  # the autograd step lends oneDNN under fp32 only
    return any(onednn.worth_it(batch, m.in_features, m.out_features, torch.float32) for m in linears)


@contextmanager
def training_step(
    model: nn.Module,
    x_train: torch.Tensor,
    *,
    loss: str,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    precision: str = "fp32",
    cuda_graph: bool = True,
    written_step: bool = True,
) -> Iterator[TrainingStep]:
    """The engine's training step for `model` on batches of `x_train`, for as long as the block runs.

    On CUDA the step is replayed from a CUDA graph unless `cuda_graph` is False
    (`aebench.train.accel.cuda_graph`); the results are the same either way. On a CPU the model gets
    that device's kernel choices while it trains (`aebench.train.accel.device_tuning`), and a plain MLP takes
    the step with its chain rule written out (`aebench.train.accel.mlp_step`) unless `written_step`
    is False: the same ops without autograd's tape, so the same results to rounding. On the
    autograd step, a CPU fp32 run gets its large Linear products from oneDNN (`aebench.train.accel.onednn`).

    bf16 runs the forward pass under autocast (master weights and Adam state stay fp32)
    and takes the loss in fp32, so the loss is comparable with an fp32 run's; on a CPU without AMX a model with
    convolutions trains in fp32 instead (`device_tuning.fp32_instead`), which the step reports.
    """
    device = x_train.device
    as_fp32 = fp32_instead(model, device, precision)
    precision = "fp32" if as_fp32 else precision
    autocast = autocast_for(device, precision)
    loss_fn = LOSSES[loss]
    running = torch.zeros((), device=device)  # lives as long as the step: a CUDA graph writes to it
    with ExitStack() as scope:
        scope.enter_context(tuned(model, device))  # undone when the step ends: the caller's model is given back
        flushed = scope.enter_context(denormals_flushed(device))  # and the CPU's denormal setting as it was
        layers = mlp_step.written_layers(model, x_train, loss) if written_step else None
        step: Callable[[torch.Tensor], None]
        if layers is not None:
            flat = scope.enter_context(mlp_step.flat_parameters(model))
            opt: torch.optim.Optimizer = mlp_step.FlatAdam(flat.flat, lr, weight_decay)
            step = mlp_step.MLPStep(
                layers, flat, x_train, loss=loss, precision=precision, batch_size=batch_size, optimizer=opt,
                grad_clip=grad_clip, running=running,
            )  # fmt: skip
        else:
            if device.type == "cpu" and precision == "fp32":
                scope.enter_context(onednn.linears(model))
            opt = make_optimizer(model.parameters(), lr, weight_decay, device)

            def step(idx: torch.Tensor) -> None:
                xb = x_train.index_select(0, idx)  # a third of `x_train[idx]`'s time on a CPU
                with autocast:
                    out = model(xb)
                batch_loss = loss_fn(out.float(), xb)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                running.add_(batch_loss.detach() * len(idx))  # stays on the device: no sync per step

        batch = min(batch_size, len(x_train))
        runner = StepRunner(step, (batch,), device, graph=cuda_graph)
        written = layers is not None
        uses_onednn = device.type == "cpu" and onednn_products(model, batch, precision, written)
        path = "written" if written else "autograd"
        yield TrainingStep(runner, opt, running, path, uses_onednn, flushed, as_fp32)


def train_epochs(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor | None,
    *,
    loss: str,
    lr: float,
    batch_size: int,
    epochs: int,
    generator: torch.Generator,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    lr_schedule: str = "none",
    progress: Progress | None = None,
    step_offset: int = 0,
    total_steps: int | None = None,
    label: str = "epoch",
    precision: str = "fp32",
    cuda_graph: bool = True,
    written_step: bool = True,
    x_val: torch.Tensor | None = None,
    stopping: Stopping | None = None,
) -> list[EpochRecord]:
    """Train `model` to reconstruct `x_train` with `training_step`'s step (see there for the
    device-specific paths); also used per layer by greedy pretraining.

    With `stopping` (which needs `x_val`), training ends early on a validation plateau and the model is left
    with its best validation epoch's weights; the records stop at the last epoch trained. The test loss is
    recorded each epoch as a curve to look at, never to decide anything."""
    if stopping is not None and x_val is None:
        raise ValueError("early stopping needs a validation set")
    device = x_train.device
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    total_steps = total_steps or steps * epochs
    records: list[EpochRecord] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    with training_step(
        model, x_train, loss=loss, lr=lr, batch_size=batch_size, weight_decay=weight_decay, grad_clip=grad_clip,
        precision=precision, cuda_graph=cuda_graph, written_step=written_step,
    ) as train:  # fmt: skip
        sched = _schedule(train.optimizer, lr_schedule, epochs)
        for epoch in range(1, epochs + 1):
            model.train()
            train.running.zero_()
            synchronize(device)
            start = time.perf_counter()
            for step_no, idx in enumerate(batches(n, batch_size, generator, device), 1):
                train.runner(idx)
                if progress is not None and step_no % PROGRESS_EVERY == 0:
                    progress(step_offset + (epoch - 1) * steps + step_no, total_steps, f"{label} {epoch}/{epochs}")
            synchronize(device)
            seconds = time.perf_counter() - start
            train_loss = float(train.running) / n
            test_loss = _evaluate(model, x_test, LOSSES[loss]) if x_test is not None else math.nan
            val_loss = _evaluate(model, x_val, LOSSES[loss]) if x_val is not None else math.nan
            if (blown := divergence(epoch, train_loss, test_loss, x_test is not None)) is not None:
                raise blown
            if x_val is not None and not math.isfinite(val_loss):
                raise Diverged(epoch, val_loss)
            lr_now = current_lr(train.optimizer)
            records.append(EpochRecord(epoch, train_loss, test_loss, seconds, lr_now, train.runner.captured, val_loss))
            if sched is not None:
                sched.step()
            if progress is not None:
                msg = f"{label} {epoch}/{epochs} train {train_loss:.4f}"
                if x_val is not None:
                    msg += f" val {val_loss:.4f}"
                if x_test is not None:
                    msg += f" test {test_loss:.4f}"
                progress(step_offset + epoch * steps, total_steps, msg)
            if stopping is not None:
                if stopping.improved(val_loss, best_loss):
                    best_loss, best_epoch = val_loss, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch - best_epoch >= stopping.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return records
