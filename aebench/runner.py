"""Run a grid: validate everything first, skip what is done, claim, train, record.

A cell that diverges or fails is recorded as such and the grid goes on; Ctrl-C drops
the claim of the run in flight (it is not a result) and stops.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aebench import checkpoint
from aebench import data as datamod
from aebench.config import RunConfig
from aebench.engine import Progress, run_one
from aebench.errors import AebenchError, BadInput, Diverged, failure_reason
from aebench.model import Autoencoder
from aebench.registry import create_model
from aebench.store import DB_NAME, FINISHED, HEARTBEAT_EVERY_S, Store, open_store

if TYPE_CHECKING:
    from aebench.executors import Executor


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


@dataclass
class GridJob:
    """What an executor needs to run a grid: the cells, the open store, and what `prepare` loaded."""

    configs: Sequence[RunConfig]
    results: Path
    store: Store
    finished: set[str]
    datasets: dict[str, datamod.Dataset]
    device: torch.device | None  # None: each worker resolves --device on its own machine
    events: GridEvents
    data_dir: Path | None = None
    allow_download: bool = True
    stack: bool = True


def run_grid(
    configs: Sequence[RunConfig],
    results: str | Path,
    *,
    device: str = "auto",
    data_dir: str | Path | None = None,
    allow_download: bool = True,
    events: GridEvents | None = None,
    executor: str | Executor = "local",
    stack: bool | None = None,
    executor_options: Mapping[str, Any] | None = None,
) -> list[Outcome]:
    """Train every config not yet done in `<results>/aebench.db`; return one Outcome per config.

    `executor` names where the cells train (`aebench.executors`: "local" here, one after
    another; "ray" on a Ray cluster, with `executor_options` such as `address`); whichever
    it is, only this process claims cells and writes the store. `stack` None stacks where
    stacking pays (on CUDA; on a CPU batched products are slower than single ones).
    """
    from aebench.executors import create_executor  # it builds on this module

    runs_on = create_executor(executor, executor_options) if isinstance(executor, str) else executor
    events = events or GridEvents()
    dev = runs_on.device(device)
    results = Path(results)
    finished = finished_ids(results, configs)
    # Everything that can be wrong with the input fails here, before the store is created.
    datasets = prepare([c for c in configs if c.run_id not in finished], data_dir, allow_download)
    folder = None if data_dir is None else Path(data_dir).resolve()  # workers run elsewhere
    with runs_on.session(len(configs) - len(finished)), open_store(results) as store:
        events.grid_start(len(configs), len(configs) - len(finished))
        stacks = runs_on.stacks_pay(dev) if stack is None else stack
        job = GridJob(configs, results, store, finished, datasets, dev, events, folder, allow_download, stacks)
        outcomes = runs_on.run(job)
        # Cells another process was training when we passed them may have finished since.
        for outcome in outcomes:
            if outcome.status == "running":
                outcome.row = store.run(outcome.run_id) or outcome.row
                outcome.status = outcome.row.get("status", "running")
    return outcomes


def run_local(job: GridJob) -> list[Outcome]:
    """The local executor: train the claimed cells in this process, one after another, except
    that cells differing only in seed, learning rate, weight decay or loss are trained together
    as one stack (`aebench.stacked`) when the job says so."""
    store, results, configs, events = job.store, job.results, job.configs, job.events
    assert job.device is not None
    stacks = _stacks(job) if job.stack else {}
    done: dict[str, Outcome] = {}
    try:
        for index, cfg in enumerate(configs):
            if cfg.run_id in done:
                continue  # trained in an earlier cell's stack
            if cfg.run_id in job.finished or not store.claim(cfg):
                status = store.status(cfg.run_id) or "running"
                new = [Outcome(cfg, status, skipped=True, row=store.run(cfg.run_id) or {})]
            else:
                mates = [c for c in stacks.get(cfg.run_id, []) if c.run_id not in done and store.claim(c)]
                group = [cfg, *mates]
                progress = _heartbeat(store, [c.run_id for c in group], events.run_start(index, cfg))
                if mates:
                    new = _train_stack_claimed(store, results, group, job.device, job.datasets[cfg.dataset], progress)
                else:
                    new = [_train_claimed(store, results, cfg, job.device, job.datasets[cfg.dataset], progress)]
            for outcome in new:
                done[outcome.run_id] = outcome
                events.run_end(outcome)
    except KeyboardInterrupt:
        # The interrupt can land anywhere: mid-run, or between a run's record and the next claim.
        # Every claim of this process that is not a result is dropped (a stored run is untouched).
        store.release(*(c.run_id for c in configs if c.run_id not in done))
        raise GridInterrupted([done[c.run_id] for c in configs if c.run_id in done], len(configs)) from None
    return [done[c.run_id] for c in configs]


def _stacks(job: GridJob) -> dict[str, list[RunConfig]]:
    """run_id -> the other cells of the grid it is stacked with (same shapes, see `stack_key`;
    at most `MAX_STACK` cells a stack)."""
    from aebench.stacked import MAX_STACK, stack_key, stackable

    groups: dict[str, list[RunConfig]] = {}
    for cfg in job.configs:
        if cfg.run_id in job.finished:
            continue
        spec = cfg.model
        model = create_model(spec.arch, job.datasets[cfg.dataset].input_shape, **spec.builder_options())
        if stackable(cfg, model):
            groups.setdefault(stack_key(cfg), []).append(cfg)
    chunks = [group[i : i + MAX_STACK] for group in groups.values() for i in range(0, len(group), MAX_STACK)]
    return {c.run_id: [m for m in chunk if m is not c] for chunk in chunks for c in chunk}


def _train_stack_claimed(
    store: Store,
    results: Path,
    group: list[RunConfig],
    dev: torch.device,
    dataset: datamod.Dataset,
    progress: Progress | None,
) -> list[Outcome]:
    """Train claimed cells as one stack and record each (a run that diverges in it is recorded
    as diverged, the others as done); if the stack fails (out of memory, say), train them one
    by one instead, so that each gets its own status and reason."""
    from aebench.engine import run_stack

    try:
        results_ = run_stack(group, device=dev, dataset=dataset, progress=progress)
    except (AebenchError, RuntimeError, ValueError):
        return [_train_claimed(store, results, cfg, dev, dataset, progress) for cfg in group]
    return [
        record_diverged(store, cfg, r) if isinstance(r, Diverged)
        else record_done(store, results, cfg, r.model, r.metrics, _epoch_rows(r.epochs))
        for cfg, r in zip(group, results_, strict=True)
    ]  # fmt: skip


def _heartbeat(store: Store, run_ids: Sequence[str], progress: Progress | None) -> Progress:
    """Forward progress, and tell the store now and then that these claims (a cell, or a stack's) are alive."""
    last = time.monotonic()

    def update(completed: int, total: int, message: str) -> None:
        nonlocal last
        if time.monotonic() - last > HEARTBEAT_EVERY_S:
            store.heartbeat(*run_ids)
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
        return record_diverged(store, cfg, exc)
    except (AebenchError, RuntimeError, ValueError) as exc:  # e.g. CUDA out of memory, a config torch rejects
        reason = failure_reason(exc)
        store.finish(cfg, "failed", {}, error=reason)
        return Outcome(cfg, "failed", error=reason, row=store.run(cfg.run_id) or {})
    return record_done(store, results, cfg, result.model, result.metrics, _epoch_rows(result.epochs))


def record_diverged(store: Store, cfg: RunConfig, exc: Diverged) -> Outcome:
    """A diverged run is a result (that config diverges), stored with the epoch it happened at."""
    store.finish(cfg, "diverged", {}, error=str(exc), diverged_epoch=exc.epoch)
    return Outcome(cfg, "diverged", error=str(exc), row=store.run(cfg.run_id) or {})


def record_done(
    store: Store,
    results: Path,
    cfg: RunConfig,
    model: torch.nn.Module,
    metrics: dict[str, Any],
    epochs: Sequence[Mapping[str, Any]],
) -> Outcome:
    """Store a finished run: its checkpoint first, so a done row always has one, then the row."""
    assert isinstance(model, Autoencoder)
    path = checkpoint.save(results, cfg, model)
    store.finish(cfg, "done", metrics, epochs, checkpoint=str(path.relative_to(results)))
    return Outcome(cfg, "done", row=store.run(cfg.run_id) or {})
