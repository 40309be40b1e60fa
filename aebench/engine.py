"""One training run: data on the device as one tensor, batches drawn by index, honest clocks.

The engine raises `Diverged` on a non-finite loss; recording what happened is the
runner's job.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aebench import data as datamod
from aebench import mlp_step, onednn
from aebench.config import RunConfig
from aebench.cuda_graph import StepRunner
from aebench.device_tuning import tune_for
from aebench.errors import BadInput, Diverged
from aebench.model import Autoencoder
from aebench.registry import create_model

# progress(completed_steps, total_steps, message)
Progress = Callable[[int, int, str], None]

EVAL_BATCH = 1024  # evaluation has no gradient state, so bigger batches are just faster
PROGRESS_EVERY = 25  # steps between progress callbacks: enough for a smooth bar, cheap

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy,
    "l1": F.l1_loss,
}


def resolve_device(name: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu; an explicit device that is not there is refused."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda or name == "mps" and not mps:
        raise BadInput(f"--device {name}: not available on this machine; choose from: auto, cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise BadInput(f"--device: unknown value {name!r}; choose from: auto, cpu, cuda, mps")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a clock read after it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)"


def git_commit() -> str | None:
    """The project's commit (with -dirty for local changes), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


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


@dataclass
class RunResult:
    config: RunConfig
    model: Autoencoder
    epochs: list[EpochRecord]
    metrics: dict[str, Any] = field(default_factory=dict)


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
    (`aebench.cuda_graph`); the results are the same either way. On a CPU the model gets
    that device's kernel choices first (`aebench.device_tuning`), and a plain MLP takes
    the step with its chain rule written out (`aebench.mlp_step`) unless `written_step`
    is False: the same ops without autograd's tape, so the same results to rounding. On the
    autograd step, a CPU fp32 run gets its large Linear products from oneDNN (`aebench.onednn`).

    bf16 runs the forward pass under autocast (master weights and Adam state stay fp32)
    and takes the loss in fp32, so the loss is comparable with an fp32 run's.
    """
    device = x_train.device
    tune_for(model, device)
    autocast = autocast_for(device, precision)
    loss_fn = LOSSES[loss]
    running = torch.zeros((), device=device)  # lives as long as the step: a CUDA graph writes to it
    layers = mlp_step.written_layers(model, x_train, loss) if written_step else None
    with ExitStack() as scope:
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

        runner = StepRunner(step, (min(batch_size, len(x_train)),), device, graph=cuda_graph)
        yield TrainingStep(runner, opt, running)


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
) -> list[EpochRecord]:
    """Train `model` to reconstruct `x_train` with `training_step`'s step (see there for the
    device-specific paths); also used per layer by greedy pretraining."""
    device = x_train.device
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    total_steps = total_steps or steps * epochs
    records: list[EpochRecord] = []
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
            if (blown := divergence(epoch, train_loss, test_loss, x_test is not None)) is not None:
                raise blown
            lr_now = current_lr(train.optimizer)
            records.append(EpochRecord(epoch, train_loss, test_loss, seconds, lr_now, train.runner.captured))
            if sched is not None:
                sched.step()
            if progress is not None:
                msg = f"{label} {epoch}/{epochs} train {train_loss:.4f}"
                if x_test is not None:
                    msg += f" test {test_loss:.4f}"
                progress(step_offset + epoch * steps, total_steps, msg)
    return records


def _data(config: RunConfig, ds: datamod.Dataset, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training and test images on the device, in its output activation's range."""
    train_images = ds.train.images
    if config.train_size is not None:
        if config.train_size > len(train_images):
            raise BadInput(f"--train-size {config.train_size} exceeds the {len(train_images)} training images")
        train_images = train_images[: config.train_size]
    output = config.model.output_activation
    return datamod.to_device(train_images, dev, output), datamod.to_device(ds.test.images, dev, output)


def build(config: RunConfig, ds: datamod.Dataset, dev: torch.device) -> Autoencoder:
    """The run's model, initialised under its own seed."""
    spec = config.model
    torch.manual_seed(config.seed)
    model = create_model(spec.arch, ds.input_shape, **spec.builder_options()).to(dev)
    assert isinstance(model, Autoencoder)
    return model


def measure(
    model: Autoencoder,
    config: RunConfig,
    records: list[EpochRecord],
    ds: datamod.Dataset,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    started: datetime,
    wall_start: float,
    stack_size: int = 1,
) -> dict[str, Any]:
    """Everything a run records after training: quality, size, cost, speed, provenance."""
    from aebench import metrics  # sklearn/torchmetrics load only when a run needs them

    dev = x_train.device
    return {
        **metrics.reconstruction(model, x_test),
        **metrics.sizes(model),
        "flops_per_sample": metrics.flops_per_sample(model),
        **metrics.throughput([r.seconds for r in records], len(x_train)),
        **metrics.inference_throughput(model, x_test, config.batch_size, config.precision),
        "probe_acc": metrics.probe_accuracy(model, x_train, ds.train.labels[: len(x_train)], x_test, ds.test.labels),
        "peak_mem_mb": metrics.peak_memory_mb(dev),
        "stack_size": stack_size,
        "cuda_graph": any(r.cuda_graph for r in records),
        "device": dev.type,
        "device_name": device_name(dev),
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "host": platform.node(),
        "pid": os.getpid(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - wall_start,
    }


def run_one(
    config: RunConfig,
    *,
    device: str | torch.device = "auto",
    dataset: datamod.Dataset | None = None,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
    cuda_graph: bool = True,
) -> RunResult:
    """Train and measure one config; `dataset` lets a grid read its data once."""
    from aebench.pretrain import greedy_pretrain, pretrain_steps

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    ds = dataset or datamod.load(config.dataset, data_dir)
    spec = config.model
    x_train, x_test = _data(config, ds, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model = build(config, ds, dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)  # the shuffle order

    steps = math.ceil(len(x_train) / config.batch_size) * config.epochs
    offset = 0
    if spec.pretrain == "greedy":
        assert spec.pretrain_epochs is not None
        offset = pretrain_steps(model, len(x_train), config.batch_size, spec.pretrain_epochs)
        steps += offset
        greedy_pretrain(
            model, x_train, epochs=spec.pretrain_epochs, lr=config.lr, batch_size=config.batch_size,
            generator=generator, progress=progress, total_steps=steps,
        )  # fmt: skip
    records = train_epochs(
        model, x_train, x_test,
        loss=config.loss, lr=config.lr, batch_size=config.batch_size, epochs=config.epochs,
        generator=generator, weight_decay=config.weight_decay, grad_clip=config.grad_clip,
        lr_schedule=config.lr_schedule, progress=progress, step_offset=offset, total_steps=steps,
        precision=config.precision, cuda_graph=cuda_graph,
    )  # fmt: skip
    if progress is not None:
        progress(steps, steps, "measuring")
    return RunResult(config, model, records, measure(model, config, records, ds, x_train, x_test, started, wall_start))


def run_stack(
    configs: list[RunConfig],
    *,
    device: str | torch.device = "auto",
    dataset: datamod.Dataset,
    progress: Progress | None = None,
    cuda_graph: bool = True,
) -> list[RunResult | Diverged]:
    """Train configs that share every shape (they may differ in seed, learning rate, weight
    decay and loss) as one stacked model (see `aebench.stacked`); a diverged run is returned
    as its `Diverged`, the others are measured."""
    from aebench.stacked import train_stacked

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    first = configs[0]
    x_train, x_test = _data(first, dataset, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    models = [build(c, dataset, dev) for c in configs]
    records = train_stacked(
        models, x_train, x_test, losses=[c.loss for c in configs], lrs=[c.lr for c in configs],
        batch_size=first.batch_size, epochs=first.epochs,
        generators=[torch.Generator(device=dev).manual_seed(c.seed) for c in configs],
        weight_decays=[c.weight_decay for c in configs], precision=first.precision, progress=progress,
        cuda_graph=cuda_graph,
    )  # fmt: skip
    return [
        r if isinstance(r, Diverged)
        else RunResult(c, m, r, measure(m, c, r, dataset, x_train, x_test, started, wall_start, len(configs)))
        for c, m, r in zip(configs, models, records, strict=True)
    ]  # fmt: skip
