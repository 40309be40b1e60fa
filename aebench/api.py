"""The library function behind each command that composes several layers: grid, store and integrations.

A front end (the CLI, a notebook, a script) parses its input into typed arguments, calls one
function here and shows what it returns; what a command does, in which order, lives here and not
in the front end, so every front end does the same. Commands that need one layer only call that
layer directly (`aebench.models.catalog.model_rows`, `aebench.data.locate`, `aebench.bench.run.bench`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from aebench.config import GridSpec, RunConfig
from aebench.data import image_shape
from aebench.errors import BadInput
from aebench.grid.baselines import with_baselines
from aebench.grid.cells import Outcome
from aebench.grid.executors import GridEvents, check_executor
from aebench.grid.runner import check_grid, done_elsewhere, plan, run_grid
from aebench.grid.store import open_store
from aebench.grid.workers import WorkerJob, default_workers, run_workers, threads_each
from aebench.train.device import device_name, resolve_device, torch_threads
from aebench.train.engine import check_budget

if TYPE_CHECKING:  # for the annotation only: importing the MLflow integration pulls in matplotlib
    from aebench.integrations.mlflow import Exported


@dataclass(frozen=True)
class TrainResult:
    """One trained (or already stored) run: its outcome and its learning curve from the store.

    `curve` is one dict per epoch (epoch, train_loss, test_loss, seconds, lr); `epochs`, everywhere in
    aebench, is the config's count of epochs (`outcome.config.epochs`), never the curve.
    """

    outcome: Outcome
    curve: list[dict[str, Any]]


def train(
    config: RunConfig,
    results: str | Path,
    *,
    device: str = "auto",
    data_dir: str | Path | None = None,
    allow_download: bool = True,
    events: GridEvents | None = None,
) -> TrainResult:
    """`aebench train`: run `config` as a one-cell grid (so a stored result is shown, not retrained) and read
    back its learning curve, which the outcome's row does not carry."""
    [outcome] = run_grid(
        [config], results, device=device, data_dir=data_dir, allow_download=allow_download, events=events
    )
    with open_store(results, create=False) as store:
        curve = store.epochs(config.run_id).drop(columns="run_id").to_dict("records")
    return TrainResult(outcome, curve)


@dataclass(frozen=True)
class MlflowRequest:
    """Whether to log a grid to MLflow, and where: `uri` and `experiment` default as in `mlflow.export`."""

    enabled: bool = False
    uri: str | None = None
    experiment: str | None = None


@dataclass(frozen=True)
class GridSpeed:
    """How fast the grid itself went: its wall time (this call's, skipped cells included), the epochs its newly
    trained runs ran (a fitted baseline runs none), and the worker processes and torch threads each had."""

    wall_seconds: float
    model_epochs: int
    workers: int = 1
    threads: int | None = None  # per worker; None where the executor's workers choose their own

    @property
    def model_epochs_per_s(self) -> float:
        return self.model_epochs / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall_seconds, "model_epochs": self.model_epochs,
            "model_epochs_per_s": self.model_epochs_per_s, "workers": self.workers, "threads": self.threads,
        }  # fmt: skip


def trained_epochs(outcomes: Sequence[Outcome]) -> int:
    """Epochs run by the cells this call trained (skipped ones were someone else's work)."""
    return sum(int(o.row.get("epochs_run") or 0) for o in outcomes if not o.skipped and o.status == "done")


@dataclass(frozen=True)
class CompareResult:
    """A finished grid: one outcome per cell, what the MLflow export did (None without one), what went wrong."""

    outcomes: list[Outcome]
    exported: Exported | None
    failed: int
    diverged: int
    elsewhere: dict[str, str] = field(default_factory=dict)  # run_id -> device, for cells another device trained
    here: str | None = None  # this machine's device name, where it is known (the local executor)
    speed: GridSpeed | None = None

    @property
    def unfinished(self) -> int:
        """Cells that failed or diverged: a grid with any is not a success."""
        return self.failed + self.diverged


def _cells(grid: GridSpec | Sequence[RunConfig], baselines: bool = True) -> list[RunConfig]:
    """The grid's cells, and PCA at each of their code sizes unless `baselines` is False (`aebench.grid.baselines`)."""
    configs = grid.expand() if isinstance(grid, GridSpec) else list(grid)
    return with_baselines(configs) if baselines else configs


def _check(executor: str, request: MlflowRequest, results: str | Path | None = None) -> None:
    """Refuse an unknown executor, a meaningless MLflow request or an MLflow store that cannot be written
    (given `results`: a run, not a dry run) before anything is read or trained."""
    # deferred: the MLflow integration imports matplotlib, which `train` and plain imports of this module skip
    from aebench.integrations import mlflow as mlflow_export

    check_executor(executor)
    mlflow_export.check_request(request.enabled, request.uri, request.experiment)
    if request.enabled and results is not None:
        mlflow_export.check_target(results, request.uri)


def compare_plan(
    grid: GridSpec | Sequence[RunConfig],
    results: str | Path,
    *,
    executor: str = "local",
    request: MlflowRequest | None = None,
    baselines: bool = True,
) -> pd.DataFrame:
    """`aebench compare --dry-run`: check the request as `compare` would, then say what it would train.

    Returns `aebench.grid.runner.plan`'s frame (run_id, the varying axes, status); nothing is written.
    """
    configs = _cells(grid, baselines)
    _check(executor, request or MlflowRequest())
    for config in configs:  # what `compare` would refuse, the plan refuses too
        check_budget(config, image_shape(config.dataset))
    return plan(configs, results)


def compare(
    grid: GridSpec | Sequence[RunConfig],
    results: str | Path,
    *,
    executor: str = "local",
    executor_options: Mapping[str, Any] | None = None,
    request: MlflowRequest | None = None,
    stack: bool | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    allow_download: bool = True,
    events: GridEvents | None = None,
    on_trained: Callable[[list[Outcome], GridSpeed], None] | None = None,
    here: bool = False,
    baselines: bool = True,
    workers: int | None = None,
) -> CompareResult:
    """`aebench compare`: check the executor and the MLflow request, train every cell not yet done, log the
    grid to MLflow when asked, and count the cells that failed or diverged.

    `grid` is a `GridSpec` (expanded here) or the configs themselves; PCA is fitted beside them at each of their
    code sizes unless `baselines` is False. `on_trained` sees the outcomes and the grid's speed as
    soon as the grid is done, before the MLflow export, which is slow and can fail on its own: a front
    end shows the grid's results either way. Ctrl-C raises `GridInterrupted` with what had finished.

    `workers` processes train the grid on a CPU (`aebench.grid.workers`), each with its share of the cores;
    None takes `default_workers`'s rule. Only the local executor has workers.
    """
    request = request or MlflowRequest()
    configs = _cells(grid, baselines)
    _check(executor, request, results)
    # Cells another device trained are skipped (the same experiment) and counted (their speed is not this
    # machine's); `here` trains them here too, stored beside, under this machine's name.
    machine = device_name(resolve_device(device)) if executor == "local" else None
    elsewhere = done_elsewhere(Path(results), configs, machine) if machine else {}
    if here:
        if machine is None:
            raise BadInput("--here needs --executor local: Ray's workers name their own devices")
        configs = [replace(c, machine=machine) if c.run_id in elsewhere else c for c in configs]
    if workers is not None and workers < 1:
        raise BadInput(f"--workers: {workers} is not allowed; it must be >= 1")
    if executor != "local" and workers not in (None, 1):
        raise BadInput(f"--workers applies to --executor local; {executor}'s scheduler places the runs itself")
    start = time.perf_counter()
    count, threads = 1, None
    if executor == "local":
        count, threads = workers or 1, torch_threads()
        if workers is None or workers > 1:
            folder, finished, datasets = check_grid(configs, results, data_dir, allow_download)
            todo = [c for c in configs if c.run_id not in finished]
            sizes = {name: len(ds.train.images) for name, ds in datasets.items()}
            count = workers or default_workers(resolve_device(device), todo, sizes)
            threads = threads_each(count) if count > 1 else threads
    if count > 1:
        assert threads is not None
        events = events or GridEvents()
        events.grid_start(len(configs), len(todo))
        job = WorkerJob(tuple(configs), folder, device, None if data_dir is None else Path(data_dir).resolve(),
                        allow_download, stack, count)  # fmt: skip
        outcomes = run_workers(job, events, finished)
    else:
        outcomes = run_grid(
            configs, results, device=device, data_dir=data_dir, allow_download=allow_download, events=events,
            executor=executor, executor_options=executor_options, stack=stack,
        )  # fmt: skip
    speed = GridSpeed(time.perf_counter() - start, trained_epochs(outcomes), count, threads)
    if on_trained is not None:
        on_trained(outcomes, speed)
    exported = None
    if request.enabled:
        # deferred, as in `_check`: only an export needs the MLflow integration's picture code
        from aebench.integrations import mlflow as mlflow_export

        exported = mlflow_export.export(results, request.uri, request.experiment, [c.run_id for c in configs], data_dir)
    return CompareResult(
        outcomes,
        exported,
        failed=sum(o.status == "failed" for o in outcomes),
        diverged=sum(o.status == "diverged" for o in outcomes),
        elsewhere={} if here else elsewhere,
        here=machine,
        speed=speed,
    )
