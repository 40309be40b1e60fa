"""Training speed as one model of a config trained alone: timed windows of solo steps after training.

The epoch timers of a run say how long its epochs took, which depends on how it was trained: a
stack of K cells shares each step, so its epoch time divided by K is no model's speed. Every run's
`train_samples_per_s` is measured here instead, the same way for a solo run and for each run of a
stack: after training, a copy of the trained model takes the same engine step (the same path,
precision, batch size and device) for a warm-up and then a few timed windows, the device
synchronised before each clock read (in the spirit of timm's `benchmark.py`). The trained model
itself is not touched, so the measurement cannot change the run's result.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch

from aebench.config import RunConfig
from aebench.models.base import Autoencoder
from aebench.train.device import synchronize
from aebench.train.loop import training_step

WARMUP_STEPS = 5  # past a CUDA graph's capture (after 3 eager steps) and the allocator's first requests
WINDOWS = 5  # median and spread over this many windows
WINDOW_STEPS = 10  # steps a window: enough for a clock read to be noise, few enough to cost a fraction of an epoch


def window_steps(n: int, batch_size: int) -> int:
    """Steps a timed window takes: 10, or a quarter of an epoch's steps where that is less (at least 2), so that
    measuring a run on a small training set does not cost many times its training."""
    steps_per_epoch = -(-n // batch_size)
    return max(2, min(WINDOW_STEPS, steps_per_epoch // 4))


def solo_speed(model: Autoencoder, config: RunConfig, x_train: torch.Tensor, cuda_graph: bool = True) -> dict[str, Any]:
    """Samples/s of `config`'s training step on a copy of `model`, alone: median, min and max over the windows,
    the epoch time that rate gives, and the engine path that was timed (`step`, `onednn`, `cuda_graph`)."""
    device = x_train.device
    solo = copy.deepcopy(model)
    batch = min(config.batch_size, len(x_train))
    shuffle = torch.Generator(device=device).manual_seed(config.seed)
    order = torch.randperm(len(x_train), generator=shuffle, device=device)
    full = [idx for idx in order.split(batch) if len(idx) == batch]  # every timed step does the same work
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    window = window_steps(len(x_train), config.batch_size)
    rates = []
    with training_step(
        solo, x_train, loss=config.loss, lr=config.lr, batch_size=config.batch_size,
        weight_decay=config.weight_decay, grad_clip=config.grad_clip, precision=config.precision,
        cuda_graph=cuda_graph, written_step=config.step != "autograd",
    ) as train:  # fmt: skip
        solo.train()
        for i in range(WARMUP_STEPS):
            train.runner(full[i % len(full)])
        for w in range(WINDOWS):
            synchronize(device)
            start = time.perf_counter()
            for i in range(window):
                train.runner(full[(WARMUP_STEPS + w * window + i) % len(full)])
            synchronize(device)
            rates.append(window * batch / (time.perf_counter() - start))
    median = statistics.median(rates)
    figures: dict[str, Any] = {
        "train_samples_per_s": median,
        "train_samples_per_s_min": min(rates),
        "train_samples_per_s_max": max(rates),
        "epoch_seconds": len(x_train) / median,
        "timed_steps": WINDOWS * window,
        "engine_step": train.step,
        "onednn": int(train.onednn),
        "flush_denormal": int(train.flush_denormal),
        "bf16_as_fp32": int(train.bf16_as_fp32),
        "cuda_graph": int(train.runner.captured),
    }
    if device.type == "cuda":
        figures["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return figures
