"""Run a grid: validate everything first, skip what is done, open the store, hand the cells to an executor.

A cell that diverges or fails is recorded as such and the grid goes on; Ctrl-C drops
the claim of the run in flight (it is not a result) and stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from aebench import data as datamod
from aebench.config import CONFIG_COLUMNS, RunConfig
from aebench.errors import BadInput
from aebench.grid.cells import Outcome
from aebench.grid.executors import Executor, GridEvents, GridJob, create_executor
from aebench.grid.store import DB_NAME, FINISHED, check_results, open_store
from aebench.models.registry import create_model
from aebench.train.engine import check_budget


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


def done_elsewhere(results: Path, configs: Sequence[RunConfig], here: str) -> dict[str, str]:
    """run_id -> the device that trained it, for the `configs` done in the store on a device other than `here`
    (their speeds are that machine's; their quality is the same experiment's)."""
    if not (results / DB_NAME).exists():
        return {}
    found = {}
    with open_store(results, create=False) as store:
        for c in configs:
            row = store.run(c.run_id)
            if row and row.get("status") == "done" and row.get("device_name") not in (None, here):
                found[c.run_id] = str(row["device_name"])
    return found


def check_grid(
    configs: Sequence[RunConfig], results: str | Path, data_dir: str | Path | None, allow_download: bool
) -> tuple[Path, set[str], dict[str, datamod.Dataset]]:
    """Everything that can be wrong with a grid's input, refused before the store is created: the results
    folder, an --equal-steps budget its pretraining would fill, the data, every model. Gives the results
    folder, the cells already finished there and the datasets of the cells left."""
    folder = check_results(results)
    finished = finished_ids(folder, configs)
    for config in configs:
        check_budget(config, datamod.image_shape(config.dataset))
    return folder, finished, prepare([c for c in configs if c.run_id not in finished], data_dir, allow_download)


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
    worker_count: int = 1,
) -> list[Outcome]:
    """Train every config not yet done in `<results>/aebench.db`; return one Outcome per config.

    `executor` names where the cells train (`aebench.grid.executors`: "local" here, one after
    another; "ray" on a Ray cluster, with `executor_options` such as `address`); whichever
    it is, only this process claims cells and writes the store. `stack` None stacks where
    stacking pays (on CUDA; on a CPU batched products are slower than single ones). `worker_count` is
    recorded with each run: how many `compare` workers shared the machine (`aebench.grid.workers`).
    """
    runs_on = create_executor(executor, executor_options) if isinstance(executor, str) else executor
    events = events or GridEvents()
    dev = runs_on.device(device)
    results, finished, datasets = check_grid(configs, results, data_dir, allow_download)
    folder = None if data_dir is None else Path(data_dir).resolve()  # workers run elsewhere
    with runs_on.session(len(configs) - len(finished)), open_store(results) as store:
        events.grid_start(len(configs), len(configs) - len(finished))
        stacks = runs_on.stacks_pay(dev) if stack is None else stack
        job = GridJob(
            configs, results, store, finished, datasets, dev, events, folder, allow_download, stacks, worker_count
        )
        outcomes = runs_on.run(job)
        # Cells another process was training when we passed them may have finished since.
        for outcome in outcomes:
            if outcome.status == "running":
                outcome.row = store.run(outcome.run_id) or outcome.row
                outcome.status = outcome.row.get("status", "running")
    return outcomes


# config columns a plan never lists as an axis: pretrain_epochs follows pretrain
_QUIET_COLUMNS = {"pretrain_epochs"}


def varying_columns(configs: Sequence[RunConfig]) -> list[str]:
    """Config columns whose value differs across `configs` (always the arch): what tells the cells apart."""
    cols = [c.columns() for c in configs]
    return [
        name for name in CONFIG_COLUMNS
        if name == "arch" or (name not in _QUIET_COLUMNS and len({str(c[name]) for c in cols}) > 1)
    ]  # fmt: skip


def plan(configs: Sequence[RunConfig], results: str | Path) -> pd.DataFrame:
    """What `run_grid` would do with `configs`: a row per cell (run_id, the varying axes, its store status or
    "to train"), read from the store without writing to it, so a dry run leaves no store behind."""
    statuses: dict[str, str] = {}
    if (Path(results) / DB_NAME).exists():
        with open_store(results, create=False) as store:
            statuses = {c.run_id: store.status(c.run_id) or "to train" for c in configs}
    axes = varying_columns(configs)
    rows = []
    for c in configs:
        cols = c.columns()
        rows.append({"run_id": c.run_id, **{a: cols[a] for a in axes}, "status": statuses.get(c.run_id, "to train")})
    return pd.DataFrame(rows)
