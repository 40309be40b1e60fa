"""The Ray executor: a grid's cells on a Ray cluster (or a Ray instance it starts on this machine).

Ray is optional (`pip install 'aebench[ray]'`), so it is imported when a `RayExecutor` is built,
not with this module. Workers train through the same `train_cells` as the local executor and
send back plain values; the driver records them (`aebench.grid.cells.record`).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from aebench import data as datamod
from aebench.config import DEVICES, RunConfig, check_choice, check_number
from aebench.errors import AebenchError, BadInput, failure_reason, first_line
from aebench.grid.cells import Outcome, Payload, TrainFn, plan_stacks, record, skipped, train_cells
from aebench.grid.executors import Executor, GridInterrupted, GridJob, register_executor
from aebench.grid.store import HEARTBEAT_EVERY_S
from aebench.train.device import resolve_device

RAY_MISSING = "--executor ray needs Ray: pip install 'aebench[ray]'"
MAX_REASON = 200  # Ray's messages run to paragraphs; a store's `error` is one line


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
        self.train_fn = train
        # Each dataset read once however many cells this worker trains (a Ray actor is a long-lived process).
        self.datasets: dict[str, datamod.Dataset] = {}

    def dataset(self, name: str) -> datamod.Dataset:
        """Dataset `name` as this worker finds it (--data-dir, its own $AEBENCH_DATA, cache, /usr/share), once."""
        if name not in self.datasets:
            self.datasets[name] = datamod.load(name, self.data_dir, self.allow_download)
        return self.datasets[name]

    def train(self, configs: list[dict[str, Any]]) -> list[Payload]:
        """Train one cell, or one stack of cells; a payload per cell, in order."""
        cells = [RunConfig.from_dict(c) for c in configs]
        dev = resolve_device(self.device_name)
        if dev.type == "cpu":
            torch.set_num_threads(self.threads)  # the CPUs Ray gave this worker, not every core of its node
        try:
            dataset = self.dataset(cells[0].dataset)
        except AebenchError as exc:
            return [{"status": "failed", "error": f"on {os.uname().nodename}: {exc}"} for _ in cells]
        payloads = train_cells(cells, dev, dataset, train=self.train_fn)
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # leave the shared GPU's memory to the runs beside this one
        for payload in payloads:
            payload["worker"] = {"pid": os.getpid(), "host": os.uname().nodename, "dataset_loads": len(self.datasets)}
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
            reason = first_line(exc, type(exc).__name__)
            raise BadInput(f"--ray-address {self.address or '(none)'}: cannot connect to Ray ({reason})") from None
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
        # cells that can share a stack go to a worker together
        stacks = plan_stacks(job.configs, job.finished, job.datasets) if job.stack else {}
        handled: set[str] = set()  # skipped, in flight or recorded

        def skip(index: int, cfg: RunConfig) -> None:
            grid.outcomes[index] = skipped(store, cfg)
            handled.add(cfg.run_id)
            events.run_end(grid.outcomes[index])

        try:
            for index, cfg in enumerate(job.configs):
                if cfg.run_id in handled:
                    continue  # sent with an earlier cell's stack
                if cfg.run_id in job.finished:
                    skip(index, cfg)
                    continue
                while not grid.idle:  # claim a cell only when a worker is free to take it
                    self._wait(job, grid)
                if not store.claim(cfg):  # done or held by another process since we looked
                    skip(index, cfg)
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
        except Exception:
            # The grid cannot go on (a full disk while the driver wrote a checkpoint or the store): drop the
            # claims the same way, so the next call trains what is left.
            with suppress(Exception):
                store.release(*(c.run_id for i, c in enumerate(job.configs) if i not in grid.outcomes))
            raise
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

    def _record(self, job: GridJob, cfg: RunConfig, payload: Payload) -> Outcome:
        """Store what a worker sent back (or that it died), as the local executor would have."""
        worker = payload.get("worker")
        if worker:
            key = (worker["host"], worker["pid"])
            self.dataset_loads[key] = max(self.dataset_loads.get(key, 0), worker["dataset_loads"])
        return record(job.store, job.results, cfg, payload)


def ray_failure(exc: BaseException) -> str:
    """A Ray error as a one-line reason: the worker's own exception where it raised one, else how it was lost."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(exc)):
        return failure_reason(cause)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if len(first) > MAX_REASON:
        first = first[: MAX_REASON - 3] + "..."
    return f"Ray worker died while training this run ({type(exc).__name__}: {first})"
