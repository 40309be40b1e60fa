"""A study's store made again from the files its report wrote (`runs.csv`, `epochs.csv`).

A study is published as its report folder (a store with every checkpoint is too large for git); to report it
again with a newer aebench, or to train beside it (PCA at its code sizes, more seeds), its runs go back into a
store. Each row's config is rebuilt from its columns and must hash to the row's own run id, so a file that was
edited or written by an incompatible aebench is refused, before anything is written. Checkpoints are not in the
folder: the report's pictures need them and say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.columns import MEASURED, missing
from aebench.config import ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid.store import FINISHED, open_store

_INTS = {"latent_dim", "pretrain_epochs", "train_size", "batch_size", "epochs", "seed", "patience"}
_BOOLS = {"batchnorm", "equal_steps"}
_EPOCH_KEYS = ("train_loss", "val_loss", "test_loss", "seconds", "lr")


@dataclass(frozen=True)
class Imported:
    """What an import did: runs written, runs the store already had (left as they were), epochs written."""

    written: int
    kept: int
    epochs: int

    def summary(self, results: Path) -> str:
        return (f"imported {self.written} runs ({self.epochs} epochs) into {results / 'aebench.db'}; "
                f"{self.kept} already there, left as they were")  # fmt: skip


def _value(name: str, value: Any) -> Any:
    if value is None or missing(value):
        return None
    if name == "hidden":
        return tuple(int(h) for h in str(value).split(","))
    if name in _INTS:
        return int(value)
    if name in _BOOLS:
        return bool(int(value))
    return value.item() if hasattr(value, "item") else value


def config_of(row: Mapping[str, Any]) -> RunConfig:
    """The run's config from its columns (as `RunConfig.columns` flattened it); settings the file predates read
    at the value every run had then (`RunConfig.from_dict`)."""
    spec = {f.name: _value(f.name, row.get(f.name)) for f in fields(ModelSpec)}
    top = {f.name: _value(f.name, row[f.name]) for f in fields(RunConfig) if f.name != "model" and f.name in row}
    top = {k: v for k, v in top.items() if v is not None or k in ("train_size", "grad_clip", "machine", "patience")}
    return RunConfig.from_dict({"model": spec, **top})


def import_study(folder: str | Path, results: str | Path) -> Imported:
    """Write the finished runs of the report folder `folder` (its runs.csv and epochs.csv) into `results`' store."""
    folder = Path(folder)
    runs_csv, epochs_csv = folder / "runs.csv", folder / "epochs.csv"
    if not runs_csv.is_file():
        raise BadInput(f"{folder}: no runs.csv there; give a folder `aebench report --out` wrote")
    runs = pd.read_csv(runs_csv, dtype={"run_id": str, "hidden": str})  # "128", not 128.0; ids stay text
    epochs = pd.DataFrame(columns=["run_id", "epoch"])
    if epochs_csv.is_file():
        epochs = pd.read_csv(epochs_csv, dtype={"run_id": str})
    if "run_id" not in runs.columns or "status" not in runs.columns:
        raise BadInput(f"{runs_csv}: not an aebench runs.csv (no run_id or status column)")
    finished = runs[runs["status"].isin(FINISHED)]
    configs = []
    for index, row in finished.iterrows():
        line = int(index) + 2  # the file's own line: its header is line 1
        try:
            cfg = config_of(row.to_dict())
        except (BadInput, TypeError, ValueError) as exc:
            raise BadInput(f"{runs_csv} line {line}: not a config aebench can read ({exc})") from None
        if cfg.run_id != row["run_id"]:
            raise BadInput(f"{runs_csv} line {line}: its config gives run id {cfg.run_id}, not its own "
                           f"{row['run_id']} (edited, or written by an aebench whose configs hash differently); "
                           "nothing imported")  # fmt: skip
        configs.append((cfg, row))
    by_run = {rid: part.sort_values("epoch") for rid, part in epochs.groupby("run_id")}
    written = kept = n_epochs = 0
    with open_store(results) as store:
        for cfg, row in configs:
            if store.status(cfg.run_id) in FINISHED:
                kept += 1
                continue
            measured = {k: _plain(row[k]) for k in MEASURED if k in row and not missing(row[k])}
            part = by_run.get(cfg.run_id, pd.DataFrame())
            curve = [
                {"epoch": int(e["epoch"]), **{k: _plain(e.get(k)) for k in _EPOCH_KEYS}} for _, e in part.iterrows()
            ]
            record = {k: _plain(row.get(k)) for k in ("error", "diverged_epoch", "claimed_at", "finished_at")}
            store.finish(cfg, str(row["status"]), measured, curve, **record)  # the run's own times, not the import's
            written += 1
            n_epochs += len(curve)
    return Imported(written, kept, n_epochs)


def _plain(value: Any) -> Any:
    """A pandas cell as SQLite takes it: numpy scalars as Python numbers, NaN as NULL."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
