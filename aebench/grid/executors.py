"""Where a grid's cells train: the contract between the runner and an executor, and a registry of
executors by name, like the models.

`local` (`aebench.grid.local`) trains the cells here, one after another; `ray`
(`aebench.grid.ray`) hands them to a Ray cluster, because that is the scheduler ML teams
already run: aebench builds none of its own. Whichever runs the cells, only the process
that called `run_grid` (the driver) claims cells and writes the store, so the store's
resume, claim and failure rules are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from aebench import data as datamod
from aebench.config import RunConfig, check_choice
from aebench.errors import BadInput
from aebench.grid.cells import Outcome
from aebench.grid.store import Store
from aebench.train.device import resolve_device
from aebench.train.loop import Progress


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
    workers: int = 1  # `compare` workers sharing the machine, recorded with each run


class Executor:
    """Runs the claimable cells of a grid; subclasses register under a name.

    `options` maps each keyword the executor takes to the CLI flag that sets it, so an
    option given to an executor that does not take it is refused by name.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, str]] = {}

    def device(self, device: str) -> torch.device | None:
        """Check `--device`; resolve it here, or return None where each worker resolves it."""
        return resolve_device(device)

    def stacks_pay(self, device: torch.device | None) -> bool:
        """Whether stacking cells is faster here: on CUDA one batched kernel replaces K launches;
        on a CPU batched products run slower than K single ones (measured: `aebench bench --stack`)."""
        return device is not None and device.type == "cuda"

    @contextmanager
    def session(self, todo: int) -> Iterator[None]:
        """Whatever must be up while `todo` cells train; entered before the store is opened."""
        yield

    def run(self, job: GridJob) -> list[Outcome]:
        raise NotImplementedError


_EXECUTORS: dict[str, type[Executor]] = {}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    def wrap(cls: type[Executor]) -> type[Executor]:
        if name in _EXECUTORS:
            raise ValueError(f"executor {name!r} registered twice")
        cls.name = name
        _EXECUTORS[name] = cls
        return cls

    return wrap


def list_executors() -> list[str]:
    return list(_EXECUTORS)


def check_executor(name: str) -> str:
    return check_choice("--executor", name, list_executors())


def create_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """Build executor `name`; an unknown name, or an option it does not take, is refused in one line."""
    cls = _EXECUTORS[check_executor(name)]
    given = {k: v for k, v in (options or {}).items() if v is not None}
    for key in given:
        if key not in cls.options:
            flags = {flag for ex in _EXECUTORS.values() for k, flag in ex.options.items() if k == key}
            raise BadInput(f"{next(iter(flags), key)} does not apply to --executor {name}")
    return cls(**given)
