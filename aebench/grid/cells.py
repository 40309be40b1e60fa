"""One grid cell, or one stack of cells, from config to a recorded outcome.

Every executor trains through `train_cells` (the local one in this process, Ray's workers in
theirs), which reports each cell as plain values; only the driver, which holds the store,
turns those into a checkpoint and a row (`record`). One path, so a cell ends the same way
wherever it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from aebench import data as datamod
from aebench.config import RunConfig
from aebench.errors import AebenchError, Diverged, failure_reason
from aebench.grid.store import Store
from aebench.models.registry import create_model
from aebench.train import checkpoint
from aebench.train.engine import RunResult, run_one, run_stack
from aebench.train.loop import Progress
from aebench.train.stacked import MAX_STACK, stack_key, stackable

# How a cell ended, as plain values a Ray worker can send back: `status` (done, diverged, failed), `error`,
# `diverged_epoch`, and for a done run its `metrics`, `epochs` and `state_dict` (on the CPU).
Payload = dict[str, Any]
# One cell's training: config, device and dataset in, its payload out (tests pass their own).
TrainFn = Callable[[RunConfig, torch.device, datamod.Dataset], Payload]
# What a cell's training may raise and still be recorded as failed (CUDA out of memory, a config torch rejects).
CELL_ERRORS = (AebenchError, RuntimeError, ValueError)


@dataclass
class Outcome:
    """What happened to one cell: trained now (done/failed/diverged) or skipped (already done)."""

    config: RunConfig
    status: str
    skipped: bool = False
    error: str | None = None
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.config.run_id


def _diverged(exc: Diverged) -> Payload:
    return {"status": "diverged", "error": str(exc), "diverged_epoch": exc.epoch}


def _done(result: RunResult) -> Payload:
    return {
        "status": "done",
        "metrics": result.metrics,
        "epochs": [asdict(r) for r in result.epochs],
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "input_shape": list(result.model.input_shape),
    }


def train_cell(
    config: RunConfig, device: torch.device, dataset: datamod.Dataset, progress: Progress | None = None
) -> Payload:
    """Train one cell and say how it ended; an interrupt is left to the caller."""
    try:
        return _done(run_one(config, device=device, dataset=dataset, progress=progress))
    except Diverged as exc:
        return _diverged(exc)
    except CELL_ERRORS as exc:
        return {"status": "failed", "error": failure_reason(exc)}


def train_cells(
    configs: Sequence[RunConfig],
    device: torch.device,
    dataset: datamod.Dataset,
    progress: Progress | None = None,
    train: TrainFn | None = None,
) -> list[Payload]:
    """Train cells that share a stack (`plan_stacks`) as one stacked model, a payload per cell in order
    (a run that diverges in it is reported as diverged); if the stack fails (out of memory, say), train
    them one by one, so that each gets its own status and reason."""
    if len(configs) > 1:
        try:
            stacked = run_stack(list(configs), device=device, dataset=dataset, progress=progress)
        except CELL_ERRORS:
            pass
        else:
            return [_diverged(r) if isinstance(r, Diverged) else _done(r) for r in stacked]
    if train is not None:
        return [train(c, device, dataset) for c in configs]
    return [train_cell(c, device, dataset, progress) for c in configs]


def record(store: Store, results: Path, cfg: RunConfig, payload: Mapping[str, Any], workers: int = 1) -> Outcome:
    """Store how a claimed cell ended: a done run's checkpoint first, so a done row always has one; `workers`, the
    grid's worker processes on this machine, goes with its measurements (its speed shared the cores with them)."""
    status = payload["status"]
    if status == "done":
        path = checkpoint.save_state(results, cfg, payload["state_dict"], payload["input_shape"])
        metrics = {**payload["metrics"], "workers": workers}
        store.finish(cfg, "done", metrics, payload["epochs"], checkpoint=str(path.relative_to(results)))
        return Outcome(cfg, "done", row=store.run(cfg.run_id) or {})
    # A diverged run is a result too (that config diverges), stored with the epoch it happened at.
    store.finish(cfg, status, {}, error=payload["error"], diverged_epoch=payload.get("diverged_epoch"))
    return Outcome(cfg, status, error=payload["error"], row=store.run(cfg.run_id) or {})


def skipped(store: Store, cfg: RunConfig) -> Outcome:
    """A cell this process does not train: done earlier, or held by another process."""
    return Outcome(cfg, store.status(cfg.run_id) or "running", skipped=True, row=store.run(cfg.run_id) or {})


def plan_stacks(
    configs: Sequence[RunConfig], finished: set[str], datasets: Mapping[str, datamod.Dataset]
) -> dict[str, list[RunConfig]]:
    """run_id -> the other cells of the grid it is stacked with (same shapes, see `stack_key`;
    at most `MAX_STACK` cells a stack)."""
    groups: dict[str, list[RunConfig]] = {}
    for cfg in configs:
        if cfg.run_id in finished:
            continue
        spec = cfg.model
        model = create_model(spec.arch, datasets[cfg.dataset].input_shape, **spec.builder_options())
        if stackable(cfg, model):
            groups.setdefault(stack_key(cfg), []).append(cfg)
    chunks = [group[i : i + MAX_STACK] for group in groups.values() for i in range(0, len(group), MAX_STACK)]
    return {c.run_id: [m for m in chunk if m is not c] for chunk in chunks for c in chunk}
