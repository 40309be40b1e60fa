"""The local executor: a grid's cells trained in this process, one after another (or a stack at a time).

Separate from the runner, which only validates, opens the store and hands the job to whichever
executor was asked for; this is the one that trains here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress

from aebench.grid.cells import Outcome, plan_stacks, record, skipped, train_cells
from aebench.grid.executors import Executor, GridInterrupted, GridJob, register_executor
from aebench.grid.store import HEARTBEAT_EVERY_S, Store
from aebench.train.loop import Progress


@register_executor("local")
class LocalExecutor(Executor):
    """One cell after another in this process, on `--device`; cells differing only in seed, learning
    rate, weight decay or loss train together as one stack (`aebench.train.stacked`) when the job says so."""

    def run(self, job: GridJob) -> list[Outcome]:
        store, configs, events = job.store, job.configs, job.events
        assert job.device is not None
        stacks = plan_stacks(configs, job.finished, job.datasets) if job.stack else {}
        done: dict[str, Outcome] = {}
        try:
            for index, cfg in enumerate(configs):
                if cfg.run_id in done:
                    continue  # trained in an earlier cell's stack
                if cfg.run_id in job.finished or not store.claim(cfg):
                    new = [skipped(store, cfg)]
                else:
                    mates = [c for c in stacks.get(cfg.run_id, []) if c.run_id not in done and store.claim(c)]
                    group = [cfg, *mates]
                    progress = _heartbeat(store, [c.run_id for c in group], events.run_start(index, cfg))
                    payloads = train_cells(group, job.device, job.datasets[cfg.dataset], progress)
                    new = [record(store, job.results, c, p, job.workers) for c, p in zip(group, payloads, strict=True)]
                for outcome in new:
                    done[outcome.run_id] = outcome
                    events.run_end(outcome)
        except KeyboardInterrupt:
            # The interrupt can land anywhere: mid-run, or between a run's record and the next claim.
            # Every claim of this process that is not a result is dropped (a stored run is untouched).
            store.release(*(c.run_id for c in configs if c.run_id not in done))
            raise GridInterrupted([done[c.run_id] for c in configs if c.run_id in done], len(configs)) from None
        except Exception:
            # The grid cannot go on (a full disk while a checkpoint or the store was written): the same,
            # so the next call trains the runs left; if the store itself cannot be written now, the
            # claims die with this process and the next call takes them over.
            with suppress(Exception):
                store.release(*(c.run_id for c in configs if c.run_id not in done))
            raise
        return [done[c.run_id] for c in configs]


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
