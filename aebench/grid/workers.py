"""`compare --workers N`: N processes train one grid on one store, each with its share of the cores.

Why: a grid trains one cell at a time with every thread, and small models barely use a second
thread (`fc shallow` 55,000 img/s on one thread, 79,500 on two, on a 2-core AMD EPYC), so on a
CPU two one-thread workers do more work than one two-thread process. Each worker is a whole
`run_grid` of the same cells in its own process, claiming cells in the store exactly as two
`compare` processes started by hand do, so resume, failure and claim rules are the store's own;
a worker measuring a finished run (SSIM, probe, speed windows) leaves the other training.

This process is one of the workers (it has the data loaded and torch imported already) and shows
every worker's progress; a stop here (Ctrl-C, SIGTERM) reaches the spawned workers as SIGTERM, and
each drops its claim in flight as a lone `compare` would; the outcomes are read back from the store.
A worker that runs out of cells gives its cores to those still training (`_Shares`). Each spawned
worker dies with this process (Linux's parent-death signal), so a SIGKILL here stops them too,
cleanly; a worker killed alone leaves a claim that the next `compare` takes over (its pid is
gone), as today.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aebench.config import RunConfig
from aebench.errors import AebenchError
from aebench.grid.cells import Outcome
from aebench.grid.executors import GridEvents, GridInterrupted
from aebench.grid.runner import run_grid
from aebench.grid.store import DB_NAME, open_store
from aebench.train.loop import Progress

MAX_WORKERS = 8  # each worker holds its own copy of the data (about 0.25 GB for MNIST's splits)
# Below this many images seen in the whole grid (every cell's epochs x training images), a worker's start
# (a fresh interpreter importing torch and reading the data, 3-5 s on 2 cores) costs more than it saves.
WORTH_IMAGES = 1_000_000
POLL_S = 0.5
PR_SET_PDEATHSIG = 1


def cores() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_each(workers: int) -> int:
    """Torch threads per worker while all are training: the cores shared out, at least one each."""
    return max(1, cores() // workers)


def default_workers(device: torch.device, todo: Sequence[RunConfig], train_images: dict[str, int]) -> int:
    """The rule `--workers` follows when not given: on a CPU, one worker per core, at most one per cell left
    to train and at most `MAX_WORKERS`, once the grid has `WORTH_IMAGES` images to see; one elsewhere (one
    GPU is one device: two processes on it contend for the same kernels)."""
    if device.type != "cpu" or len(todo) < 2:
        return 1
    seen = sum(c.epochs * (c.train_size or train_images[c.dataset]) for c in todo)
    if seen < WORTH_IMAGES:
        return 1
    return max(1, min(cores(), len(todo), MAX_WORKERS))


@dataclass(frozen=True)
class WorkerJob:
    """What every worker is given: the grid's cells and where to store them; each resolves the rest itself."""

    configs: tuple[RunConfig, ...]
    results: Path
    device: str
    data_dir: Path | None
    allow_download: bool
    stack: bool | None
    workers: int


class _Shares:
    """The cores shared among the workers still training: a worker that runs out of cells leaves, and the
    others take its cores at their next progress call (every 25 steps), so a grid's last long cell does not
    finish on one thread while the other cores idle."""

    def __init__(self, active: Any) -> None:
        self.active = active  # a multiprocessing.Value: the workers still training

    def threads(self) -> int:
        return max(1, cores() // max(1, int(self.active.value)))

    def adapt(self) -> None:
        want = self.threads()
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def leave(self) -> None:
        with self.active.get_lock():
            self.active.value -= 1


class _SharingEvents(GridEvents):
    """A worker's events: each progress call first takes the worker's current share of the cores."""

    def __init__(self, inner: GridEvents, shares: _Shares) -> None:
        self.inner, self.shares = inner, shares

    def grid_start(self, total: int, todo: int) -> None: ...  # the watcher shows the grid's start once

    def run_start(self, index: int, config: RunConfig) -> Progress:
        self.shares.adapt()
        bar = self.inner.run_start(index, config)

        def update(completed: int, total: int, message: str) -> None:
            self.shares.adapt()
            if bar is not None:
                bar(completed, total, message)

        return update

    def run_end(self, outcome: Outcome) -> None:
        self.inner.run_end(outcome)


class _QueueEvents(GridEvents):
    """A spawned worker's grid events, sent to the process that started it."""

    def __init__(self, messages: Any, worker: int) -> None:
        self.messages, self.worker = messages, worker

    def run_start(self, index: int, config: RunConfig) -> Progress:
        self.messages.put(("start", index, config))

        def update(completed: int, total: int, message: str) -> None:
            self.messages.put(("progress", config.run_id, completed, total, message))

        return update

    def run_end(self, outcome: Outcome) -> None:
        self.messages.put(("end", outcome))


class _Relay(GridEvents):
    """Every worker's events (this process's own, and the spawned workers' from the queue) onto the front
    end's, under one lock: a cell another worker holds is that worker's to report, a finished one is
    reported once."""

    def __init__(self, events: GridEvents) -> None:
        self.events = events
        self.lock = threading.Lock()
        self.bars: dict[str, Progress | None] = {}
        self.ended: set[str] = set()

    def run_start(self, index: int, config: RunConfig) -> Progress:
        with self.lock:
            self.bars[config.run_id] = self.events.run_start(index, config)

        def update(completed: int, total: int, message: str) -> None:
            with self.lock:
                bar = self.bars.get(config.run_id)
                if bar is not None:
                    bar(completed, total, message)

        return update

    def run_end(self, outcome: Outcome) -> None:
        with self.lock:
            if outcome.status == "running" or outcome.run_id in self.ended:
                return
            self.ended.add(outcome.run_id)
            self.bars.pop(outcome.run_id, None)
            self.events.run_end(outcome)


def _die_with_parent() -> None:
    """SIGTERM this process when its parent dies, however it dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is not None:
        ctypes.CDLL(name).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _train(job: WorkerJob, events: GridEvents, shares: _Shares) -> None:
    """One worker's share: the whole grid through `run_grid`, claiming what no other process holds."""
    try:
        run_grid(
            job.configs, job.results, device=job.device, data_dir=job.data_dir, allow_download=job.allow_download,
            events=_SharingEvents(events, shares), stack=job.stack, worker_count=job.workers,
        )  # fmt: skip
    finally:
        shares.leave()


def _work(job: WorkerJob, worker: int, messages: Any, active: Any) -> None:
    """A spawned worker: stops on SIGTERM (its claim in flight dropped), and with the process that started it."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the watcher, which forwards it
    signal.signal(signal.SIGTERM, _stop)
    shares = _Shares(active)
    torch.set_num_threads(shares.threads())
    try:
        _train(job, _QueueEvents(messages, worker), shares)
    except GridInterrupted:
        pass
    except AebenchError as exc:
        messages.put(("error", str(exc)))
    finally:
        messages.put(("exit",))


def run_workers(job: WorkerJob, events: GridEvents, finished: set[str]) -> list[Outcome]:
    """Train the grid with `job.workers` workers: this process and `job.workers - 1` spawned ones, the
    spawned workers' events relayed to `events`; one outcome per cell, read from the store at the end.

    A stop (Ctrl-C, SIGTERM) here stops every worker (SIGTERM: each drops its claim in flight), then raises
    `GridInterrupted` with what had finished; a reason a worker could name for failing is raised here."""
    context = multiprocessing.get_context("spawn")  # no forked copy of this process's torch threads
    messages = context.Queue()
    active = context.Value("i", job.workers)
    procs = [context.Process(target=_work, args=(job, i, messages, active), name=f"aebench-worker-{i}")
             for i in range(1, job.workers)]  # fmt: skip
    relay = _Relay(events)
    errors: list[str] = []
    exits = threading.Semaphore(0)

    def forward() -> None:
        left = len(procs)
        while left:
            try:
                message = messages.get(timeout=POLL_S)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break  # a worker killed outright sends no exit
                continue
            kind = message[0]
            if kind == "exit":
                left -= 1
            elif kind == "start":
                bars[message[2].run_id] = relay.run_start(message[1], message[2])
            elif kind == "progress":
                bar = bars.get(message[1])
                if bar is not None:
                    bar(*message[2:])
            elif kind == "end":
                relay.run_end(message[1])
            elif kind == "error":
                errors.append(message[1])
        exits.release()

    bars: dict[str, Progress] = {}
    before = torch.get_num_threads()
    shares = _Shares(active)
    for proc in procs:
        proc.start()
    forwarder = threading.Thread(target=forward, name="aebench-relay", daemon=True)
    forwarder.start()
    torch.set_num_threads(shares.threads())
    try:
        _train(job, relay, shares)
        for proc in procs:
            proc.join()
    except (KeyboardInterrupt, GridInterrupted):
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker drops its claim in flight and exits
        for proc in procs:
            proc.join()
        exits.acquire(timeout=10 * POLL_S)
        done = [o for o in stored_outcomes(job, finished) if o.status not in ("running", "to train")]
        raise GridInterrupted(done, len(job.configs)) from None
    finally:
        torch.set_num_threads(before)
    exits.acquire(timeout=10 * POLL_S)
    if errors:
        raise AebenchError(errors[0])
    return stored_outcomes(job, finished)


def stored_outcomes(job: WorkerJob, finished: set[str]) -> list[Outcome]:
    """One outcome per cell as the store has it now (`to train` for a cell no worker reached)."""
    rows: dict[str, dict[str, Any]] = {}
    if (job.results / DB_NAME).exists():
        with open_store(job.results, create=False) as store:
            rows = {c.run_id: store.run(c.run_id) or {} for c in job.configs}
    outcomes = []
    for cfg in job.configs:
        row = rows.get(cfg.run_id, {})
        outcomes.append(Outcome(cfg, str(row.get("status") or "to train"), skipped=cfg.run_id in finished,
                                error=row.get("error"), row=row))  # fmt: skip
    return outcomes
