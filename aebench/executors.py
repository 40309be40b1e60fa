"""Where a grid's cells train: a registry of executors, name -> class, like the models.

`local` trains the cells one after another in this process. `ray` hands them to a Ray
cluster (or a Ray instance it starts on this machine), because that is the scheduler ML
teams already run: aebench builds none of its own. Whichever runs the cells, only the
process that called `run_grid` (the driver) claims cells and writes the store, so the
store's resume, claim and failure rules are the same everywhere: a worker trains and sends
back plain tensors and dicts; the driver saves the checkpoint and records the run.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from aebench import data as datamod
from aebench.config import DEVICES, RunConfig, check_choice, check_number
from aebench.engine import RunResult, resolve_device, run_one, run_stack
from aebench.errors import AebenchError, BadInput, Diverged, failure_reason
from aebench.model import Autoencoder
from aebench.registry import create_model
from aebench.runner import GridInterrupted, GridJob, Outcome, _stacks, record_done, run_local
from aebench.store import HEARTBEAT_EVERY_S

RAY_MISSING = "--executor ray needs Ray: pip install 'aebench[ray]'"
MAX_REASON = 200  # Ray's messages run to paragraphs; a store's `error` is one line


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


@register_executor("local")
class LocalExecutor(Executor):
    """One cell after another in this process, on `--device` (the runner's own loop)."""

    def run(self, job: GridJob) -> list[Outcome]:
        return run_local(job)


# ---- the Ray executor ----

# One cell's training as a worker runs it: config, device and dataset in, a payload of plain values out.
TrainFn = Callable[[RunConfig, torch.device, datamod.Dataset], dict[str, Any]]

# This process's datasets, each read once however many cells it trains (a Ray worker is a long-lived process).
_DATASETS: dict[tuple[str, str | None], datamod.Dataset] = {}
_LOADS = 0


def worker_dataset(name: str, data_dir: str | Path | None, allow_download: bool) -> datamod.Dataset:
    """Dataset `name` as this worker finds it (--data-dir, its own $AEBENCH_DATA, cache, /usr/share), once."""
    global _LOADS
    key = (name, None if data_dir is None else str(data_dir))
    if key not in _DATASETS:
        _DATASETS[key] = datamod.load(name, data_dir, allow_download)
        _LOADS += 1
    return _DATASETS[key]


def train_cell(config: RunConfig, device: torch.device, dataset: datamod.Dataset) -> dict[str, Any]:
    """Train one cell and report how it ended as plain values, the way the local runner records it.

    Returns `status` (done, diverged, failed) with `error`, and for a done run its metrics, its
    epochs and the state dict on the CPU, which the driver saves as the checkpoint.
    """
    try:
        result = run_one(config, device=device, dataset=dataset)
    except Diverged as exc:
        return _diverged(exc)
    except (AebenchError, RuntimeError, ValueError) as exc:  # e.g. CUDA out of memory
        return {"status": "failed", "error": failure_reason(exc)}
    return _done(result)


def _diverged(exc: Diverged) -> dict[str, Any]:
    return {"status": "diverged", "error": str(exc), "diverged_epoch": exc.epoch}


def _done(result: RunResult) -> dict[str, Any]:
    return {
        "status": "done",
        "metrics": result.metrics,
        "epochs": [asdict(r) for r in result.epochs],
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }


def train_cells(
    configs: list[RunConfig], device: torch.device, dataset: datamod.Dataset, train: TrainFn = train_cell
) -> list[dict[str, Any]]:
    """Train a group of cells that can share a stack (`stack_key`) as one stack, as the local runner does
    (a run that diverges in it is reported as diverged); if the stack fails, train them one by one,
    so each gets its own status."""
    if len(configs) > 1:
        try:
            return [
                _diverged(r) if isinstance(r, Diverged) else _done(r)
                for r in run_stack(configs, device=device, dataset=dataset)
            ]
        except (AebenchError, RuntimeError, ValueError):
            pass
    return [train(c, device, dataset) for c in configs]


class CellTrainer:
    """A Ray actor: one worker process holding its CPUs and GPU share, training the cells it is sent.

    An actor rather than a task per cell because Ray starts a fresh process for every task
    that uses a GPU (to free GPU memory): the actor keeps its process, so each worker reads
    the dataset once, and keeps the GPU that CUDA was first initialised on.
    """

    def __init__(
        self, device: str, threads: int, data_dir: str | None, allow_download: bool, train: TrainFn | None = None
    ) -> None:
        self.device_name = device
        self.threads = threads
        self.data_dir = data_dir
        self.allow_download = allow_download
        self.train_fn = train or train_cell

    def train(self, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Train one cell, or one stack of cells; a payload per cell, in order."""
        cells = [RunConfig.from_dict(c) for c in configs]
        dev = resolve_device(self.device_name)
        if dev.type == "cpu":
            torch.set_num_threads(self.threads)  # the CPUs Ray gave this worker, not every core of its node
        try:
            dataset = worker_dataset(cells[0].dataset, self.data_dir, self.allow_download)
        except AebenchError as exc:
            return [{"status": "failed", "error": f"on {os.uname().nodename}: {exc}"} for _ in cells]
        payloads = train_cells(cells, dev, dataset, self.train_fn)
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # leave the shared GPU's memory to the runs beside this one
        for payload in payloads:
            payload["worker"] = {"pid": os.getpid(), "host": os.uname().nodename, "dataset_loads": _LOADS}
        return payloads


@dataclass
class _Flight:
    """A Ray grid under way: idle workers, cells in flight (ObjectRef -> indices, configs, worker), outcomes."""

    idle: list[Any]
    in_flight: dict[Any, tuple[list[int], list[RunConfig], Any]] = field(default_factory=dict)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    beat: float = field(default_factory=time.monotonic)  # when the claims in flight were last heartbeaten

    def in_order(self) -> list[Outcome]:
        return [self.outcomes[i] for i in sorted(self.outcomes)]


@register_executor("ray")
class RayExecutor(Executor):
    """Cells on a Ray cluster: one actor per slot the cluster has room for, one cell in flight per actor
    (or one stack of cells that share every shape, trained as one model as the local executor does).

    A cell is claimed only when it is sent to an idle actor, so a second driver (or a local
    `compare`) on the same store takes the cells this one has not reached yet. A worker that
    dies fails only the cell it held, and a fresh worker takes its place for the next one.
    """

    options: ClassVar[dict[str, str]] = {
        "address": "--ray-address",
        "cpus_per_run": "--cpus-per-run",
        "gpus_per_run": "--gpus-per-run",
        "train": "train",
    }

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float = 1.0,
        gpus_per_run: float = 0.0,
        train: TrainFn | None = None,
    ) -> None:
        check_number("--cpus-per-run", cpus_per_run, low=0.0, low_open=True)
        check_number("--gpus-per-run", gpus_per_run, low=0.0)
        try:
            import ray
        except ImportError:
            raise BadInput(RAY_MISSING) from None
        self.ray: Any = ray
        self.address = address
        self.cpus_per_run = float(cpus_per_run)
        self.gpus_per_run = float(gpus_per_run)
        self.train = train
        self.device_name = "auto"
        self.actors: list[Any] = []
        self.slots = 0
        # (host, pid) of each worker -> how many datasets it has read (once per dataset is the promise)
        self.dataset_loads: dict[tuple[str, int], int] = {}

    def device(self, device: str) -> torch.device | None:
        check_choice("--device", device, DEVICES)
        if device in ("cuda", "mps") and self.gpus_per_run == 0:
            raise BadInput(f"--device {device} with --executor ray needs --gpus-per-run > 0 (Ray hides GPUs otherwise)")
        self.device_name = device
        return None  # each worker resolves it: the driver may have no GPU at all

    def stacks_pay(self, device: torch.device | None) -> bool:
        """Workers resolve the device themselves: stacks pay where they get a GPU share for it."""
        return self.gpus_per_run > 0 and self.device_name in ("auto", "cuda")

    @contextmanager
    def session(self, todo: int) -> Iterator[None]:
        """Connect to (or start) Ray and size the pool of workers; leave Ray as it was found."""
        if todo == 0:  # a rerun with nothing to train needs no cluster
            yield
            return
        ray = self.ray
        # Ray prints worker deaths and worker output to stdout; stdout is for aebench's results (--json).
        with redirect_stdout(sys.stderr):
            started = not ray.is_initialized()
            if started:
                self._init()
            try:
                self.slots = min(self._slots(), todo)
                yield
            finally:
                for actor in self.actors:
                    ray.kill(actor)
                self.actors = []
                if started:
                    ray.shutdown()

    def _new_actor(self, job: GridJob) -> Any:
        trainer = self.ray.remote(CellTrainer).options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run)
        data_dir = None if job.data_dir is None else str(job.data_dir)
        actor = trainer.remote(
            self.device_name, max(1, math.floor(self.cpus_per_run)), data_dir, job.allow_download, self.train
        )
        self.actors.append(actor)
        return actor

    def _replace(self, actor: Any, job: GridJob) -> Any:
        """A worker that died (or cannot be reached) is killed for good and a fresh one takes its place.

        Not Ray's own actor restarts: a call sent while an actor restarts fails as well, which
        would fail a second cell for the first one's crash.
        """
        self.ray.kill(actor)
        self.actors.remove(actor)
        return self._new_actor(job)

    def _init(self) -> None:
        ray = self.ray
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            # No address and no RAY_ADDRESS: Ray starts an instance on this machine.
            ray.init(address=self.address, include_dashboard=False, logging_level="warning")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"--ray-address {self.address or '(none)'}: cannot connect to Ray ({first})") from None
        if main and sigterm is not None:  # ray.init makes SIGTERM sys.exit; aebench stops cleanly instead (cli)
            signal.signal(signal.SIGTERM, sigterm)

    def _slots(self) -> int:
        """How many runs the cluster holds at once: per node, its CPUs (and GPUs) over one run's share."""
        slots, largest = 0, (0.0, 0.0)
        for node in self.ray.nodes():
            if not node.get("Alive", node.get("alive", False)):
                continue
            res = node.get("Resources", {})
            cpus, gpus = float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0))
            largest = max(largest, (cpus, gpus))
            fit = math.floor(cpus / self.cpus_per_run + 1e-9)
            if self.gpus_per_run > 0:
                fit = min(fit, math.floor(gpus / self.gpus_per_run + 1e-9))
            slots += fit
        if slots == 0:
            raise BadInput(
                f"--cpus-per-run {self.cpus_per_run:g} --gpus-per-run {self.gpus_per_run:g}: no Ray node has that "
                f"much (the largest has {largest[0]:g} CPUs, {largest[1]:g} GPUs)"
            )
        return slots

    def run(self, job: GridJob) -> list[Outcome]:
        store, events = job.store, job.events
        grid = _Flight(idle=[self._new_actor(job) for _ in range(self.slots)])
        index_of = {c.run_id: i for i, c in enumerate(job.configs)}
        stacks = _stacks(job) if job.stack else {}  # cells that can share a stack go to a worker together
        handled: set[str] = set()  # skipped, in flight or recorded

        def skipped(index: int, cfg: RunConfig) -> None:
            status = store.status(cfg.run_id) or "running"
            grid.outcomes[index] = Outcome(cfg, status, skipped=True, row=store.run(cfg.run_id) or {})
            handled.add(cfg.run_id)
            events.run_end(grid.outcomes[index])

        try:
            for index, cfg in enumerate(job.configs):
                if cfg.run_id in handled:
                    continue  # sent with an earlier cell's stack
                if cfg.run_id in job.finished:
                    skipped(index, cfg)
                    continue
                while not grid.idle:  # claim a cell only when a worker is free to take it
                    self._wait(job, grid)
                if not store.claim(cfg):  # done or held by another process since we looked
                    skipped(index, cfg)
                    continue
                mates = [c for c in stacks.get(cfg.run_id, []) if c.run_id not in handled and store.claim(c)]
                group = [cfg, *mates]
                handled.update(c.run_id for c in group)
                events.run_start(index, cfg)
                actor = grid.idle.pop()
                ref = actor.train.remote([c.to_dict() for c in group])
                grid.in_flight[ref] = ([index_of[c.run_id] for c in group], group, actor)
            while grid.in_flight:
                self._wait(job, grid)
        except KeyboardInterrupt:
            # Every claim of this process without an outcome is dropped: those in flight (the actors die
            # with the session) and one claimed just before the interrupt; stored runs are untouched.
            store.release(*(cfg.run_id for index, cfg in enumerate(job.configs) if index not in grid.outcomes))
            raise GridInterrupted(grid.in_order(), len(job.configs)) from None
        return grid.in_order()

    def _wait(self, job: GridJob, grid: _Flight) -> None:
        """Record the cells that finish within a while; keep the claims of the others alive."""
        ready, _ = self.ray.wait(list(grid.in_flight), num_returns=1, timeout=HEARTBEAT_EVERY_S / 3)
        for ref in ready:
            indices, group, actor = grid.in_flight[ref]
            payloads, worker_alive = self._collect(ref, len(group))
            for index, cfg, payload in zip(indices, group, payloads, strict=True):
                grid.outcomes[index] = self._record(job, cfg, payload)
            del grid.in_flight[ref]
            grid.idle.append(actor if worker_alive else self._replace(actor, job))
            for index in indices:
                job.events.run_end(grid.outcomes[index])
        if time.monotonic() - grid.beat > HEARTBEAT_EVERY_S:  # the claims are alive: the driver is
            job.store.heartbeat(*(cfg.run_id for _, group, _ in grid.in_flight.values() for cfg in group))
            grid.beat = time.monotonic()

    def _collect(self, ref: Any, cells: int) -> tuple[list[dict[str, Any]], bool]:
        """A finished call's payloads, and whether its worker lives on (an error raised in it leaves it alive)."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref), True
        except exceptions.RayTaskError as exc:
            return [{"status": "failed", "error": ray_failure(exc)}] * cells, True
        except exceptions.RayError as exc:  # the worker process or its node is gone: ActorDiedError, OOM kill, ...
            return [{"status": "failed", "error": ray_failure(exc)}] * cells, False

    def _record(self, job: GridJob, cfg: RunConfig, payload: dict[str, Any]) -> Outcome:
        """Store what a worker sent back (or that it died), as the local runner would have."""
        store = job.store
        worker = payload.get("worker")
        if worker:
            key = (worker["host"], worker["pid"])
            self.dataset_loads[key] = max(self.dataset_loads.get(key, 0), worker["dataset_loads"])
        status = payload["status"]
        if status != "done":
            store.finish(cfg, status, {}, error=payload["error"], diverged_epoch=payload.get("diverged_epoch"))
            return Outcome(cfg, status, error=payload["error"], row=store.run(cfg.run_id) or {})
        shape = job.datasets[cfg.dataset].input_shape
        model = create_model(cfg.model.arch, shape, **cfg.model.builder_options())
        assert isinstance(model, Autoencoder)
        model.load_state_dict(payload["state_dict"])
        return record_done(store, job.results, cfg, model, payload["metrics"], payload["epochs"])


def ray_failure(exc: BaseException) -> str:
    """A Ray error as a one-line reason: the worker's own exception where it raised one, else how it was lost."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(exc)):
        return failure_reason(cause)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if len(first) > MAX_REASON:
        first = first[: MAX_REASON - 3] + "..."
    return f"Ray worker died while training this run ({type(exc).__name__}: {first})"
