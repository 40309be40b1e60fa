"""Tables and lines for the terminal, and records for `--json`: what a run, a grid, a bench, the zoo came to.

Only presentation lives here: every figure shown is computed by the library and handed in. It is
apart from `app` so that the commands stay parse-call-print and so that `aebench --help`, which
imports `app` only, does not import torch through the config types used here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from aebench.columns import COLUMNS
from aebench.grid.cells import Outcome
from aebench.grid.runner import varying_columns

if TYPE_CHECKING:  # annotations only: the commands import these modules when they run
    import pandas as pd

    from aebench.data import Places

# What a run's table shows (headers, units and formats from `aebench.columns`): the grid table keeps to what
# fits a terminal; --json and the report have every column.
RUN_METRICS = (
    "test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "latent_size", "flops_per_sample",
    "train_samples_per_s", "infer_samples_per_s", "epoch_seconds",
)  # fmt: skip
RUN_DETAILS = ("compression_ratio", "peak_mem_mb", "device_name", "wall_seconds", "checkpoint", "error")
GRID_METRICS = ("test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "train_samples_per_s")


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """A run as one flat JSON-ready dict: config columns, metrics, status; NaN as null."""
    record = {k: v for k, v in outcome.row.items() if k != "config_json"}
    record.update(
        run_id=outcome.run_id,
        status=outcome.status,
        skipped=outcome.skipped,
        error=outcome.error or record.get("error"),
    )
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def run_table(outcomes: Sequence[Outcome], single: bool = False) -> Table:
    """One run's measures (`single`), or a grid's runs a row each with the axes that vary across them."""
    if single:
        [o] = outcomes
        table = Table(
            title=f"run {o.run_id} ({o.config.label()}): {o.status}"
            + (" (already in the store)" if o.skipped else "")
        )
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key in RUN_METRICS:
            table.add_row(COLUMNS[key].terminal_header, COLUMNS[key].format(o.row.get(key)))
        for key in RUN_DETAILS:
            if o.row.get(key) is not None:
                table.add_row(COLUMNS[key].header, COLUMNS[key].format(o.row[key]))
        return table
    axes = varying_columns([o.config for o in outcomes])
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    table = Table(title=f"grid: {len(outcomes)} runs, {done} done ({skipped} from earlier), "
                        f"{len(outcomes) - done} not done")  # fmt: skip
    table.add_column("run", no_wrap=True)
    for axis in axes:
        table.add_column(axis.replace("_", " "), no_wrap=True)
    table.add_column("status", no_wrap=True)
    for key in GRID_METRICS:
        table.add_column(COLUMNS[key].terminal_header, justify="right", no_wrap=True)
    for o in outcomes:
        cols = o.config.columns()
        status = o.status + ("*" if o.skipped else "")
        metrics = [COLUMNS[k].format(o.row.get(k)) for k in GRID_METRICS]
        table.add_row(o.run_id[:8], *[_fmt(cols[a], "{}") for a in axes], status, *metrics)
    if skipped:
        table.caption = "* done by an earlier call, read from the store"
    return table


def df_table(df: pd.DataFrame, title: str) -> Table:
    """A frame as a table, every value as text; missing values (None, NaN) as blanks."""
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col))
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in row])
    return table


def interrupted_line(outcomes: Sequence[Outcome], total: int) -> str:
    """What a Ctrl-C left: how many runs passed and were stored, and that rerunning resumes."""
    done = sum(o.status == "done" for o in outcomes)
    return (
        f"interrupted: {len(outcomes)} of {total} runs passed ({done} done and stored); "
        "runs in flight were dropped; rerun the same command to train the rest"
    )


def unfinished_line(failed: int, diverged: int, total: int) -> str:
    """Why a grid exits 1: how many of its runs failed or diverged."""
    return f"{failed + diverged} of {total} runs did not finish: {failed} failed, {diverged} diverged"


def models_table(rows: Sequence[dict[str, Any]], dataset: str) -> Table:
    """`aebench models`: the rows of `aebench.models.catalog.model_rows`."""
    table = Table(title=f"aebench models (sized for {dataset})")
    for col in ("name", "params", "latent", "options", "description"):
        table.add_column(col, justify="right" if col in ("params", "latent") else "left")
    for r in rows:
        table.add_row(r["name"], f"{r['params']:,}", str(r["latent_size"]), ", ".join(r["options"]), r["description"])
    return table


def datasets_table(places: Places) -> Table:
    """`aebench datasets`: each dataset and the folder it was found in."""
    table = Table(title="datasets")
    table.add_column("name")
    table.add_column("found in")
    for d in places.datasets:
        table.add_row(d.name, str(d.folder) if d.folder else "[red]not found[/red]")
    return table


def datasets_lines(places: Places) -> list[str]:
    """Where aebench looked, then how to get each dataset it did not find."""
    lines = ["looked in: " + ", ".join(str(p) for p in places.searched)]
    return lines + [f"{d.name}: {d.hint}" for d in places.datasets if not d.folder]


def bench_table(result: dict[str, Any], caption: str) -> Table:
    """`aebench bench`: a row per model and mode, from `aebench.bench.run.run_bench`'s result."""
    table = Table(
        title=f"aebench bench on {result['device_name']} (torch {result['torch_version']}), {result['dataset']}, "
        f"{result['train_size']:,} images, batch {result['batch_size']}, {result['epochs']} epochs"
    )
    columns = ("model", "mode", "s/epoch", "range", "img/s", "vs seed loop", "efficiency", "test MSE", "MSE vs ref")
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "mode") else "right", no_wrap=True)
    for r in result["rows"]:
        table.add_row(
            r["model"], r["mode"], f"{r['epoch_s']:.3f}", _num(r.get("range"), "{:.0%}"), f"{r['samples_per_s']:,.0f}",
            f"{r['speedup_vs_seed_loop']:.2f}x", _num(r.get("efficiency"), "{:.2f}"),
            _num(r.get("test_mse"), "{:.5f}"), _num(r.get("mse_vs_reference"), "{:.3f}"),
        )  # fmt: skip
    table.caption = caption
    return table


def _num(value: Any, fmt: str) -> str:
    """A bench figure, "-" where the row has none (a NaN is shown: it is a finding, not a gap)."""
    return "-" if value is None else fmt.format(value)


def clock_line(check: dict[str, Any]) -> str:
    """The bench's clock check: measured against predicted seconds for epochs 2-3."""
    return (
        f"clock check ({check['model']}): epochs 2-3 took {check['measured_s']:.2f} s, reported throughput predicts "
        f"{check['predicted_s']:.2f} s (ratio {check['ratio']:.2f})"
    )
