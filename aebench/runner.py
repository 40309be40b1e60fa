"""Run a grid: validate everything first, skip what is done, claim, train, record.

A cell that diverges or fails is recorded as such and the grid goes on; Ctrl-C drops
the claim of the run in flight (it is not a result) and stops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from aebench import checkpoint
from aebench import data as datamod
from aebench.config import RunConfig
from aebench.engine import Progress, resolve_device, run_one
from aebench.errors import AebenchError, BadInput, Diverged
from aebench.registry import create_model
from aebench.store import DB_NAME, FINISHED, HEARTBEAT_EVERY_S, Store, open_store


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


class GridInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the grid; carries what had finished before it."""

    def __init__(self, outcomes: list[Outcome], total: int) -> None:
        super().__init__(f"interrupted after {len(outcomes)} of {total} runs")
        self.outcomes = outcomes
        self.total = total


class GridEvents:
    """Callbacks a front end implements to show progress; every method is optional."""

    def grid_start(self, total: int, todo: int) -> None: ...
    def run_start(self, index: int, config: RunConfig) -> Progress | None:
        return None

    def run_end(self, outcome: Outcome) -> None: ...


def prepare(
    configs: Sequence[RunConfig], data_dir: str | Path | None, allow_download: bool
) -> dict[str, datamod.Dataset]:
    """Load every dataset and build every distinct model once, so bad input fails before any work."""
    datasets = {
        name: datamod.load(name, data_dir, allow_download) for name in dict.fromkeys(c.dataset for c in configs)
    }
    for spec, name in dict.fromkeys((c.model, c.dataset) for c in configs):
        create_model(spec.arch, datasets[name].input_shape, **spec.builder_options())
    for cfg in configs:
        n_train = len(datasets[cfg.dataset].train.images)
        if cfg.train_size is not None and cfg.train_size > n_train:
            raise BadInput(f"--train-size {cfg.train_size} exceeds the {n_train} training images of {cfg.dataset}")
    return datasets


def finished_ids(results: Path, configs: Sequence[RunConfig]) -> set[str]:
    """Run ids of `configs` already finished in the store (read only; no store is created)."""
    if not (results / DB_NAME).exists():
        return set()
    with open_store(results, create=False) as store:
        return {c.run_id for c in configs if store.status(c.run_id) in FINISHED}


def _epoch_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]


def run_grid(
    configs: Sequence[RunConfig],
    results: str | Path,
    *,
    device: str = "auto",
    data_dir: str | Path | None = None,
    allow_download: bool = True,
    events: GridEvents | None = None,
) -> list[Outcome]:
    """Train every config not yet done in `<results>/aebench.db`; return one Outcome per config."""
    events = events or GridEvents()
    dev = resolve_device(device)
    results = Path(results)
    finished = finished_ids(results, configs)
    # Everything that can be wrong with the input fails here, before the store is created.
    datasets = prepare([c for c in configs if c.run_id not in finished], data_dir, allow_download)
    outcomes: list[Outcome] = []
    with open_store(results) as store:
        events.grid_start(len(configs), len(configs) - len(finished))
        for index, cfg in enumerate(configs):
            if cfg.run_id in finished or not store.claim(cfg):
                status = store.status(cfg.run_id) or "running"
                outcome = Outcome(cfg, status, skipped=True, row=store.run(cfg.run_id) or {})
            else:
                progress = _heartbeat(store, cfg.run_id, events.run_start(index, cfg))
                try:
                    outcome = _train_claimed(store, results, cfg, dev, datasets[cfg.dataset], progress)
                except KeyboardInterrupt:
                    store.release(cfg.run_id)  # no-op if it was stored just before the interrupt
                    raise GridInterrupted(outcomes, len(configs)) from None
            outcomes.append(outcome)
            events.run_end(outcome)
        # Cells another process was training when we passed them may have finished since.
        for outcome in outcomes:
            if outcome.status == "running":
                outcome.row = store.run(outcome.run_id) or outcome.row
                outcome.status = outcome.row.get("status", "running")
    return outcomes


def _heartbeat(store: Store, run_id: str, progress: Progress | None) -> Progress:
    """Forward progress, and tell the store now and then that this claim is alive."""
    last = time.monotonic()

    def update(completed: int, total: int, message: str) -> None:
        nonlocal last
        if time.monotonic() - last > HEARTBEAT_EVERY_S:
            store.heartbeat(run_id)
            last = time.monotonic()
        if progress is not None:
            progress(completed, total, message)

    return update


def _train_claimed(
    store: Store,
    results: Path,
    cfg: RunConfig,
    dev: torch.device,
    dataset: datamod.Dataset,
    progress: Progress | None,
) -> Outcome:
    """Train a claimed cell and record how it ended; an interrupt is left to the caller."""
    try:
        result = run_one(cfg, device=dev, dataset=dataset, progress=progress)
    except Diverged as exc:
        store.finish(cfg, "diverged", {}, error=str(exc), diverged_epoch=exc.epoch)
        return Outcome(cfg, "diverged", error=str(exc), row=store.run(cfg.run_id) or {})
    except (AebenchError, RuntimeError, ValueError) as exc:  # e.g. CUDA out of memory, a config torch rejects
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        store.finish(cfg, "failed", {}, error=reason)
        return Outcome(cfg, "failed", error=reason, row=store.run(cfg.run_id) or {})
    path = checkpoint.save(results, cfg, result.model)  # before the row: a done run always has its checkpoint
    store.finish(cfg, "done", result.metrics, _epoch_rows(result.epochs), checkpoint=str(path.relative_to(results)))
    return Outcome(cfg, "done", row=store.run(cfg.run_id) or {})
