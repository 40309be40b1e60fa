"""Runs of a results store, logged to MLflow: the tracker ML teams already open.

A grid is one MLflow run (the parent) with one child run per cell, in the experiment
`--experiment`. A child holds the cell's config as params, its per-epoch losses as metrics
with the epoch as step, its final measurements as metrics, where it ran as tags, and its
checkpoint and a picture of reconstructions as artifacts. Every MLflow run is tagged with
the aebench run_id (and the grid with a hash of its run ids), so exporting again logs only
what is new: a run whose store row has not changed is left alone, one that has (a failed
run done since) is replaced. The SQLite store stays the record; MLflow is a view of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aebench import data as datamod
from aebench.columns import COLUMNS, MEASURED, of_kind
from aebench.config import RunConfig
from aebench.errors import AebenchError, BadInput, failure_reason
from aebench.grid.store import FINISHED, open_store
from aebench.train import checkpoint
from aebench.train.display import reconstruct

DEFAULT_EXPERIMENT = "aebench"
DB_FILE = "mlflow.db"  # MLflow 3 refuses new file stores (./mlruns) unless told to: a database is what it wants
ARTIFACTS = "mlartifacts"
IMAGES = 8  # test images in the reconstruction picture
TAG_KIND, TAG_RUN, TAG_GRID, TAG_SYNCED = "aebench.kind", "aebench.run_id", "aebench.grid", "aebench.synced"
# store columns that are provenance, not measurements: tags, not metrics
METRICS = tuple(c for c in MEASURED if COLUMNS[c].sql in ("REAL", "INTEGER") and c not in ("pid",))
TEXT_COLUMNS = tuple(c for c in of_kind("provenance") if c not in METRICS)  # where it ran: tags, not metrics
# per-epoch store column -> MLflow metric (distinct from the final `epoch_seconds`, the median epoch)
EPOCH_METRICS = {"train_loss": "train_loss", "val_loss": "val_loss", "test_loss": "test_loss", "lr": "lr",
                 "seconds": "epoch_time_s"}  # fmt: skip
STATUS = {"done": "FINISHED", "failed": "FAILED", "diverged": "FAILED"}
BATCH = 1000  # MLflow takes at most 1000 metrics per log_batch


def require(flag: str) -> Any:
    """Import MLflow, or refuse in one line saying how to get it."""
    try:
        import mlflow
    except ImportError:
        raise BadInput(f"{flag} needs MLflow: pip install 'aebench[mlflow]'") from None
    return mlflow


def check_request(enabled: bool, tracking_uri: str | None, experiment: str | None) -> None:
    """`compare`: --mlflow-uri and --experiment mean nothing without --mlflow; --mlflow needs MLflow."""
    if enabled:
        require("--mlflow")
        return
    for flag, value in (("--mlflow-uri", tracking_uri), ("--experiment", experiment)):
        if value is not None:
            raise BadInput(f"{flag} needs --mlflow")


def default_uri(results: str | Path) -> str:
    return f"sqlite:///{(Path(results).resolve() / DB_FILE)}"


def check_target(results: str | Path, tracking_uri: str | None) -> None:
    """Refuse, before any work, a SQLite tracking store (by default `<results>/mlflow.db`, artifacts in
    `<results>/mlartifacts`) whose folders cannot be written; a server's URI is the server's business."""
    uri = tracking_uri or default_uri(results)
    if not uri.startswith("sqlite:///"):
        return
    flag, given = ("--mlflow-uri", uri) if tracking_uri else ("--results", results)
    db = Path(uri.removeprefix("sqlite:///").split("?")[0])
    checkpoint.check_writable(db.parent, flag, given)
    checkpoint.check_writable(db.parent / ARTIFACTS, flag, given)


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite tracking file (MLflow's own default is ./mlruns in whatever folder you are in);
    a tracking server decides for itself."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
    return (db.resolve().parent / ARTIFACTS).as_uri()


@dataclass
class Exported:
    """What one export did, by aebench run_id."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    new: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # `running` in the store: not a result yet
    no_picture: list[str] = field(default_factory=list)  # done, but the dataset is not on this machine

    def summary(self) -> str:
        text = (
            f"MLflow: {len(self.new) + len(self.replaced) + len(self.unchanged)} runs in experiment "
            f"{self.experiment!r} at {self.tracking_uri} ({len(self.new)} new, {len(self.replaced)} replaced, "
            f"{len(self.unchanged)} already there)"
        )
        if self.in_flight:
            text += f"; {len(self.in_flight)} still running, not logged"
        if self.no_picture:
            text += f"; {len(self.no_picture)} without a reconstruction picture (dataset not found)"
        if self.tracking_uri.startswith(("http://", "https://")):
            text += f"; see {self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}"
        else:
            text += f"; browse them with: mlflow ui --backend-store-uri {self.tracking_uri}"
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def export(
    results: str | Path,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_ids: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
) -> Exported:
    """Log the runs of `<results>/aebench.db` (all, or `run_ids`) to MLflow as one grid.

    Args:
        tracking_uri: any URI MLflow takes (`sqlite:///path/mlflow.db`, `http://host:5000`);
            default `sqlite:///<results>/mlflow.db`, artifacts in `<results>/mlartifacts`.
        experiment: the experiment's name (default "aebench"); created if missing.
        data_dir: where to find the test images for the reconstruction pictures.
    """
    require("aebench export mlflow")
    from mlflow import MlflowClient

    results = Path(results)
    check_target(results, tracking_uri)
    uri = tracking_uri or default_uri(results)
    name = experiment or DEFAULT_EXPERIMENT
    with open_store(results, create=False) as store:
        runs = store.runs() if run_ids is None else store.runs(list(run_ids))
        runs = runs[runs["status"].notna()]
        epochs = {rid: store.epochs(rid) for rid in runs["run_id"]}
    rows = [_plain(r) for r in runs.to_dict("records")]
    with _quiet():
        try:
            client = MlflowClient(tracking_uri=uri)
            exp_id = _experiment(client, name, uri)
        except Exception as exc:  # MLflow raises its own, requests' and SQLAlchemy's errors for a bad URI
            raise BadInput(f"--mlflow-uri {uri}: cannot be used ({failure_reason(exc)})") from None
        grid_ids = sorted(r["run_id"] for r in rows)
        parent = _parent(client, exp_id, grid_ids, results)
        done = Exported(uri, name, exp_id, parent)
        logged = _logged(client, exp_id)
        pictures = _Pictures(data_dir)
        for row in rows:
            rid = row["run_id"]
            if row["status"] == "running":
                done.in_flight.append(rid)
                continue
            previous = logged.get(rid, [])
            if len(previous) == 1 and not _outdated(previous[0], row):
                done.unchanged.append(rid)
                continue
            for old in previous:  # outdated, or half-logged by an export that was cut short
                client.delete_run(old.info.run_id)
            (done.replaced if previous else done.new).append(rid)
            if not _log_run(client, exp_id, parent, row, epochs[rid], results, pictures) and row["status"] == "done":
                done.no_picture.append(rid)
        client.set_tag(parent, "aebench.runs", str(len(rows)))
        client.set_terminated(parent, "FINISHED")
    return done


# ---- MLflow objects ----


def _experiment(client: Any, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return str(client.create_experiment(name, artifact_location=_artifact_root(uri)))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


def _search(client: Any, exp_id: str, filter_string: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _parent(client: Any, exp_id: str, run_ids: Sequence[str], results: Path) -> str:
    """The grid's parent run, found by the hash of its run ids (so a second export reuses it)."""
    grid = hashlib.sha256(",".join(run_ids).encode()).hexdigest()[:16]
    for run in _search(client, exp_id, f"tags.`{TAG_KIND}` = 'grid' and tags.`{TAG_GRID}` = '{grid}'"):
        return str(run.info.run_id)
    tags = {TAG_KIND: "grid", TAG_GRID: grid, "aebench.results": str(results.resolve())}
    run = client.create_run(exp_id, tags=tags, run_name=f"grid {grid[:8]} ({len(run_ids)} runs)")
    return str(run.info.run_id)


def _logged(client: Any, exp_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for run in _search(client, exp_id, f"tags.`{TAG_KIND}` = 'run'"):
        found.setdefault(run.data.tags[TAG_RUN], []).append(run)
    return found


def _fingerprint(row: dict[str, Any]) -> str:
    """What an MLflow run must match to stand for a store row: its status and when it ended."""
    return f"{row['status']}@{row.get('finished_at')}"


def _outdated(logged: Any, row: dict[str, Any]) -> bool:
    """Whether the store row should replace the MLflow run logged for the same aebench run_id.

    The same config from another store (another machine, same shared experiment) is the same
    run_id: the newer result wins, and a failure never replaces a result, so two stores
    exported in turn do not replace each other back and forth.
    """
    synced: str | None = logged.data.tags.get(TAG_SYNCED)
    if synced is None:  # an export cut short
        return True
    if synced == _fingerprint(row):
        return False
    status, _, finished = synced.partition("@")
    if status in FINISHED and row["status"] not in FINISHED:
        return False
    return str(row.get("finished_at")) >= finished


def _log_run(
    client: Any, exp_id: str, parent: str, row: dict[str, Any], epochs: Any, results: Path, pictures: _Pictures
) -> bool:
    """Log one store row as a child run; False where its reconstruction picture could not be drawn."""
    from mlflow.entities import Metric, Param

    cfg = RunConfig.from_dict(json.loads(row["config_json"]))
    start = _ms(row.get("started_at") or row.get("claimed_at"))
    end = _ms(row.get("finished_at")) or start
    tags = {TAG_KIND: "run", TAG_RUN: row["run_id"], "aebench.status": row["status"], "mlflow.parentRunId": parent}
    for col in (*TEXT_COLUMNS, "error", "diverged_epoch"):
        if _given(row.get(col)):
            tags[f"aebench.{col}"] = _text(row[col])
    run = client.create_run(exp_id, start_time=start, tags=tags, run_name=cfg.label())
    run_id = run.info.run_id
    params = [Param(k, str(v)) for k, v in cfg.columns().items() if v is not None]  # None: does not apply to the arch
    metrics = [Metric(m, float(row[m]), end or 0, 0) for m in METRICS if _given(row.get(m))]
    clock = start or 0
    for e in epochs.to_dict("records"):
        clock += int(1000 * (e["seconds"] or 0))
        metrics += [Metric(name, float(e[col]), clock, int(e["epoch"])) for col, name in EPOCH_METRICS.items()
                    if _given(e.get(col))]  # fmt: skip
    client.log_batch(run_id, params=params)
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    drawn = True
    if row["status"] == "done" and row.get("checkpoint"):
        path = results / row["checkpoint"]
        for file in (path, path.with_name(checkpoint.CONFIG)):
            if file.is_file():
                client.log_artifact(run_id, str(file), "checkpoint")
        figure = pictures.reconstructions(path, cfg.dataset, cfg.label()) if path.is_file() else None
        drawn = figure is not None
        if figure is not None:
            client.log_figure(run_id, figure, "reconstructions.png")
    client.set_tag(run_id, TAG_SYNCED, _fingerprint(row))  # last: a run cut short is redone next time
    client.set_terminated(run_id, STATUS[row["status"]], end_time=end)
    return drawn


# ---- the reconstruction picture ----


class _Pictures:
    """Originals over reconstructions of the first test images, from a run's saved checkpoint."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self.data_dir = data_dir
        self.images: dict[str, torch.Tensor | None] = {}

    def _test_images(self, name: str) -> torch.Tensor | None:
        if name not in self.images:
            try:
                self.images[name] = datamod.load(name, self.data_dir, allow_download=False).test.images[:IMAGES]
            except AebenchError:
                self.images[name] = None
        return self.images[name]

    def reconstructions(self, path: Path, dataset: str, title: str) -> Figure | None:
        """The picture for the checkpoint at `path`; None where the dataset's test images are not here."""
        images = self._test_images(dataset)
        if images is None:
            return None
        _, model = checkpoint.load(path)
        return reconstruction_figure(*reconstruct(model, images), title)


def reconstruction_figure(originals: np.ndarray, reconstructions: np.ndarray, title: str) -> Figure:
    """Two rows of small images: the originals, and under each its reconstruction.

    The report's `pictures.plot_image_rows` draws the same kind of rows, but the report is a sibling
    of this module and may not be imported here; the arrays come from the same place
    (`aebench.train.display`), and this one small axes-per-image layout is MLflow's own.
    """
    n = len(originals)
    fig = Figure(figsize=(0.9 * n + 1.2, 2.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n, squeeze=False)
    for r, (label, images) in enumerate((("original", originals), ("reconstruction", reconstructions))):
        for c in range(n):
            axes[r, c].imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return fig


# ---- small helpers ----


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """pandas/numpy scalars (and NaN for SQL NULL) as plain Python values."""
    out = {}
    for k, v in row.items():
        v = v.item() if hasattr(v, "item") else v
        out[k] = None if isinstance(v, float) and math.isnan(v) else v
    return out


def _text(value: Any) -> str:
    """A tag value: 3, not 3.0 (SQLite NULLs turn integer columns into floats)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        stamp = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp() * 1000)


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow logs INFO lines on first use and, for a tracking server, writes two links per run to stdout
    (which is --json's); the summary line says what matters and links the experiment."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
