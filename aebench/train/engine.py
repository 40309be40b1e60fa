"""One run from config to measurements: data on the device, the model under its seed, train, measure.

The engine raises `Diverged` on a non-finite loss; recording what happened is the
runner's job.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from aebench import data as datamod
from aebench.config import RunConfig
from aebench.errors import BadInput, Diverged
from aebench.models.base import Autoencoder
from aebench.models.registry import create_model
from aebench.train.accel.device_tuning import tuned
from aebench.train.convergence import best_epoch, still_improving
from aebench.train.device import device_name, git_commit, resolve_device
from aebench.train.loop import EpochRecord, Progress, Stopping, train_epochs
from aebench.train.pretrain import greedy_pretrain, pretrain_flops, pretrain_steps
from aebench.train.speed import solo_speed
from aebench.train.stacked import train_stacked


@dataclass
class RunResult:
    config: RunConfig
    model: Autoencoder
    epochs: list[EpochRecord]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """What a run's training cost: optimizer steps (pretraining's included) and the FLOPs spent outside the
    end-to-end steps (pretraining's, or a closed-form fit's), so runs of unequal budgets are not ranked alike."""

    steps: int
    pretrain_steps: int = 0
    flops: float = 0.0


def finetune_epochs(config: RunConfig, pretrain_steps: int, per_epoch: int) -> int:
    """End-to-end epochs: `epochs`, less those whose steps pretraining took when `equal_steps` asks for one budget."""
    if not config.equal_steps:
        return config.epochs
    need = math.ceil(pretrain_steps / per_epoch)
    if config.epochs - need < 1:
        raise BadInput(
            f"--equal-steps: greedy pretraining of {config.label()} takes {need} epochs' worth of steps, "
            f"leaving none of --epochs {config.epochs} to fine-tune; raise --epochs above {need} or lower "
            "--pretrain-epochs"
        )
    return config.epochs - need


def check_budget(config: RunConfig, input_shape: tuple[int, int, int]) -> None:
    """Refuse, before anything trains, an `equal_steps` run whose pretraining would take its whole budget."""
    if not config.equal_steps or config.model.pretrain != "greedy":
        return
    spec = config.model
    model = create_model(spec.arch, input_shape, **spec.builder_options())
    finetune_epochs(config, pretrain_steps(model, 1, 1, spec.pretrain_epochs or 1), 1)  # in epochs' worth of steps


def budget_figures(
    config: RunConfig, records: list[EpochRecord], flops_per_sample: float, n_train: int, budget: Budget | None
) -> dict[str, Any]:
    """Steps, training FLOPs (a step's forward and backward, about three forwards, per image seen), and how the
    run ended: the epochs it ran, its best validation epoch, how fast validation loss was still falling."""
    budget = budget or Budget(steps=math.ceil(n_train / config.batch_size) * len(records))
    seen = n_train * len(records)
    val = [r.val_loss for r in records]
    curve = val if any(math.isfinite(v) for v in val) else []
    return {
        "epochs_run": len(records),
        "best_epoch": best_epoch(curve, config.min_delta) if curve else None,
        "still_improving": still_improving(curve) if curve else math.nan,
        "train_steps": budget.steps,
        "train_flops": 3.0 * flops_per_sample * seen + budget.flops,
    }


def _data(
    config: RunConfig, ds: datamod.Dataset, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The run's training, validation and test images on the device, in its output activation's range.

    The validation holdout is the last `val_fraction` of the (first `train_size`) training images: fixed, the same
    for every seed and every model, and never the test split.
    """
    train_images = ds.train.images
    if config.train_size is not None:
        if config.train_size > len(train_images):
            raise BadInput(f"--train-size {config.train_size} exceeds the {len(train_images)} training images")
        train_images = train_images[: config.train_size]
    n_val = max(1, round(config.val_fraction * len(train_images))) if config.val_fraction > 0 else 0
    if n_val >= len(train_images):
        raise BadInput(f"--val-fraction {config.val_fraction} leaves no training images of {len(train_images)}")
    output = config.model.output_activation
    x_train = datamod.to_device(train_images[: len(train_images) - n_val], dev, output)
    x_val = datamod.to_device(train_images[len(train_images) - n_val :], dev, output) if n_val else None
    return x_train, x_val, datamod.to_device(ds.test.images, dev, output)


def build(config: RunConfig, ds: datamod.Dataset, dev: torch.device) -> Autoencoder:
    """The run's model, initialised under its own seed."""
    spec = config.model
    torch.manual_seed(config.seed)
    model = create_model(spec.arch, ds.input_shape, **spec.builder_options()).to(dev)
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
    cuda_graph: bool = True,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Everything a run records after training: quality, size, cost, speed, provenance.

    Speed is the model's alone (`aebench.train.speed`), whether it trained alone or in a stack; a
    stacked run also records the stack's own figures from its epoch timers, under `stack_*`.
    """
    from aebench.train import metrics  # deferred for start-up time: torchmetrics and scipy load when a run is measured

    dev = x_train.device
    with tuned(model, dev):  # measured with the kernel choices it trained with
        figures: dict[str, Any] = {
            **metrics.reconstruction(model, x_test),
            **metrics.sizes(model),
            "flops_per_sample": metrics.flops_per_sample(model),
            **metrics.inference_throughput(model, x_test, config.batch_size, config.precision),
            "probe_acc": metrics.probe_accuracy(
                model, x_train, ds.train.labels[: len(x_train)], x_test, ds.test.labels
            ),
            "peak_mem_mb": metrics.peak_memory_mb(dev),
        }
    if not model.closed_form:  # a fitted baseline has no training step to time
        figures.update(solo_speed(model, config, x_train, cuda_graph))
    figures.update(budget_figures(config, records, figures["flops_per_sample"], len(x_train), budget))
    figures["stack_size"] = stack_size
    if stack_size > 1:
        stack = metrics.throughput([r.seconds for r in records], len(x_train))
        figures["stack_epoch_seconds"] = stack["epoch_seconds"]
        figures["stack_samples_per_s"] = stack_size * stack["train_samples_per_s"]  # every model's samples
    return {
        **figures,
        "device": dev.type,
        "device_name": device_name(dev),
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "host": platform.node(),
        "pid": os.getpid(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - wall_start,
        **ds.provenance(),  # the folder its data came from and the files' content MD5s
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
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    ds = dataset or datamod.load(config.dataset, data_dir)
    spec = config.model
    x_train, x_val, x_test = _data(config, ds, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model = build(config, ds, dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)  # the shuffle order

    if model.closed_form:  # a baseline (PCA): fitted in one pass, no epochs
        fit_flops = model.fit(x_train)
        figures = measure(model, config, [], ds, x_train, x_test, started, wall_start, cuda_graph=cuda_graph,
                          budget=Budget(steps=0, pretrain_steps=0, flops=fit_flops))  # fmt: skip
        return RunResult(config, model, [], figures)
    per_epoch = math.ceil(len(x_train) / config.batch_size)
    pre_steps, pre_flops = 0, 0.0
    if spec.pretrain == "greedy":
        assert spec.pretrain_epochs is not None
        pre_steps = pretrain_steps(model, len(x_train), config.batch_size, spec.pretrain_epochs)
        pre_flops = pretrain_flops(model, len(x_train), spec.pretrain_epochs)
    epochs = finetune_epochs(config, pre_steps, per_epoch)
    steps = pre_steps + per_epoch * epochs
    if spec.pretrain == "greedy":
        assert spec.pretrain_epochs is not None
        greedy_pretrain(
            model, x_train, epochs=spec.pretrain_epochs, lr=config.lr, batch_size=config.batch_size,
            generator=generator, progress=progress, total_steps=steps, written_step=config.step != "autograd",
        )  # fmt: skip
    stopping = Stopping(config.patience, config.min_delta) if config.patience is not None else None
    records = train_epochs(
        model, x_train, x_test,
        loss=config.loss, lr=config.lr, batch_size=config.batch_size, epochs=epochs,
        generator=generator, weight_decay=config.weight_decay, grad_clip=config.grad_clip,
        lr_schedule=config.lr_schedule, progress=progress, step_offset=pre_steps, total_steps=steps,
        precision=config.precision, cuda_graph=cuda_graph, written_step=config.step != "autograd",
        x_val=x_val, stopping=stopping,
    )  # fmt: skip
    if progress is not None:
        progress(steps, steps, "measuring")
    budget = Budget(pre_steps + per_epoch * len(records), pre_steps, pre_flops)
    figures = measure(
        model, config, records, ds, x_train, x_test, started, wall_start, cuda_graph=cuda_graph, budget=budget
    )
    return RunResult(config, model, records, figures)


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
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    started = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    first = configs[0]
    x_train, x_val, x_test = _data(first, dataset, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    models = [build(c, dataset, dev) for c in configs]
    records = train_stacked(
        models, x_train, x_test, losses=[c.loss for c in configs], lrs=[c.lr for c in configs],
        batch_size=first.batch_size, epochs=first.epochs,
        generators=[torch.Generator(device=dev).manual_seed(c.seed) for c in configs],
        weight_decays=[c.weight_decay for c in configs], precision=first.precision, progress=progress,
        cuda_graph=cuda_graph, x_val=x_val,
    )  # fmt: skip
    k = len(configs)
    return [
        r if isinstance(r, Diverged)
        else RunResult(c, m, r, measure(m, c, r, dataset, x_train, x_test, started, wall_start, k, cuda_graph))
        for c, m, r in zip(configs, models, records, strict=True)
    ]  # fmt: skip
