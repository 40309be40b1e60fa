"""Tables and lines for the terminal, and records for `--json`: what a run, a grid, a bench, the zoo came to.

Only presentation lives here: every figure shown is computed by the library and handed in. It is
apart from `app` so that the commands stay parse-call-print and so that `aebench --help`, which
imports `app` only, does not import torch through the config types used here.
"""

from __future__ import annotations

import math
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from aebench.cli.fit import Col, Fitted, fit_table
from aebench.columns import COLUMNS, config_label, missing, plain
from aebench.grid.baselines import WORSE, ratio_to_pca
from aebench.grid.cells import Outcome
from aebench.grid.runner import varying_columns
from aebench.grid.store import DB_NAME

if TYPE_CHECKING:  # annotations only: the commands import these modules when they run
    import pandas as pd

    from aebench.data import Places
    from aebench.report.contents import Report

# What a run's table shows (headers, units and formats from `aebench.columns`); --json and the report have every
# column. The grid's metrics in order of importance (the terminal shows those that fit), then in the order shown.
RUN_METRICS = (
    "test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "latent_size", "flops_per_sample",
    "train_samples_per_s", "infer_samples_per_s", "epoch_seconds",
)  # fmt: skip
RUN_DETAILS = (
    "test_sse", "epochs_run", "best_epoch", "still_improving", "train_steps", "compression_ratio", "peak_mem_mb",
    "device_name", "wall_seconds", "checkpoint", "error",
)  # fmt: skip
GRID_METRICS = ("test_mse", "probe_acc", "test_ssim", "params", "train_samples_per_s", "test_psnr")
GRID_ORDER = ("test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "train_samples_per_s")


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


def run_table(o: Outcome) -> Table:
    """`aebench train`: one run's measures a row each, headed as every table heads them (`aebench.columns`)."""
    table = Table(
        title=f"run {o.run_id} ({o.config.label()}): {o.status}" + (" (already in the store)" if o.skipped else "")
    )
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")  # a long path or error wraps, never cut
    for key in RUN_METRICS:
        table.add_row(_header(key, o.row), COLUMNS[key].format(o.row.get(key)))
    for key in RUN_DETAILS:
        if o.row.get(key) is not None:
            table.add_row(_header(key, o.row), COLUMNS[key].format(o.row[key]))
    return table


def _header(key: str, row: Mapping[str, Any]) -> str:
    # Off CUDA the peak is the process's resident set, as the report's table says too.
    if key == "peak_mem_mb" and row.get("device") not in (None, "cuda"):
        return "peak RSS (MB)"
    return COLUMNS[key].header


def label_axes(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> list[str]:
    """The `axes` worth naming in a row's label, as the report names configs: the arch, and each axis with two
    values within one arch or across the archs it applies to; not one that is only unset where it does not
    apply (`downsample` for fc) or set where it has one value (`pretrain none` for fc beside conv)."""
    kept = []
    for axis in axes:
        per_arch: dict[Any, set[str]] = {}
        for r in rows:
            per_arch.setdefault(r.get("arch"), set()).add("" if missing(r.get(axis)) else plain(r.get(axis)))
        set_values = {plain(r.get(axis)) for r in rows if not missing(r.get(axis))}
        if axis == "arch" or len(set_values) > 1 or any(len(v) > 1 for v in per_arch.values()):
            kept.append(axis)
    return kept


def grid_title(outcomes: Sequence[Outcome], total: int | None = None) -> str:
    """'grid: 3 cells, 2 done (1 from earlier), 1 not run': counted over the whole grid, so the cells an
    interrupted grid did not reach are counted too."""
    total = len(outcomes) if total is None else total
    counts = Counter(o.status for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    parts = [f"{counts.pop('done', 0)} done ({skipped} from earlier)"]
    parts += [f"{n} {status}" for status, n in sorted(counts.items())]
    if total > len(outcomes):
        parts.append(f"{total - len(outcomes)} not run")
    return f"grid: {total} cells, " + ", ".join(parts)


def grid_table(outcomes: Sequence[Outcome], total: int | None = None, width: int = 200, wide: bool = False) -> Fitted:
    """`aebench compare`: a row per run, labelled by the axes that vary across them; the columns that fit
    `width`, the config and its test MSE first (`aebench.cli.fit`)."""
    rows = [o.config.columns() for o in outcomes]
    axes = label_axes(rows, varying_columns([o.config for o in outcomes]))

    def metric(key: str) -> Col:
        return Col(COLUMNS[key].terminal_header, [COLUMNS[key].format(o.row.get(key)) for o in outcomes], "right")

    ratios = ratio_to_pca([{**r, **o.row} for r, o in zip(rows, outcomes, strict=True)])
    labels = [config_label(r, axes) for r in rows]
    columns = [
        Col("config", labels),
        metric("test_mse"),
        Col("×PCA", ["-" if q is None else f"{q:.2f}" for q in ratios], "right"),
        Col("status", [o.status + ("*" if o.skipped else "") for o in outcomes]),
        *[metric(k) for k in GRID_METRICS if k != "test_mse"],
        Col("run", [o.run_id[:8] for o in outcomes]),
    ]
    order = ["run", "config", "status", *[COLUMNS[k].terminal_header for k in GRID_ORDER][:1], "×PCA",
             *[COLUMNS[k].terminal_header for k in GRID_ORDER][1:]]  # fmt: skip
    notes = ["* done by an earlier call, read from the store"] if any(o.skipped for o in outcomes) else []
    worse = [f"{label} ({q:.2f}×)" for label, q in zip(labels, ratios, strict=True) if q is not None and q > 1]
    if worse:
        notes.append(f"{WORSE}: " + ", ".join(worse))
    elif any(q is not None for q in ratios):
        notes.append("×PCA: test MSE over PCA's at the same code size (below 1: better than the linear baseline)")
    return fit_table(
        columns, width, order=order, wide=wide, title=grid_title(outcomes, total),
        caption="\n".join(notes) or None,
    )  # fmt: skip


GRID_HOW = "--wide shows every column (the terminal wraps), --json every field, `aebench report` all in runs.csv"


def plan_table(plan: pd.DataFrame, title: str, width: int = 200, wide: bool = False) -> Fitted:
    """`compare --dry-run`: a row per cell of `aebench.grid.runner.plan`'s frame, labelled by its axes."""
    rows = plan.to_dict("records")
    axes = label_axes(rows, [c for c in plan.columns if c not in ("run_id", "status")])
    columns = [
        Col("config", [config_label(r, axes) for r in rows]),
        Col("status", [str(r["status"]) for r in rows]),
        Col("run", [str(r["run_id"]) for r in rows]),
    ]
    return fit_table(columns, width, wide=wide, title=title)


PLAN_HOW = "--wide shows every column (the terminal wraps), --json every field"


def interrupted_line(outcomes: Sequence[Outcome], total: int) -> str:
    """What a Ctrl-C left: how many runs passed and were stored, and that rerunning resumes."""
    done = sum(o.status == "done" for o in outcomes)
    return (
        f"interrupted: {len(outcomes)} of {total} runs passed ({done} done and stored); "
        "runs in flight were dropped; rerun the same command to train the rest"
    )


def next_line(results: Path) -> str:
    """Where a grid's results went and the command that reports them."""
    return f"results: {results / DB_NAME}; report them with: aebench report --results {shlex.quote(str(results))}"


def speed_line(speed: Any) -> str:
    """The grid's own speed (an `aebench.api.GridSpeed`): wall time, model-epochs and their rate, the workers."""
    threads = "" if speed.threads is None else f" x {speed.threads} thread{'s' if speed.threads != 1 else ''}"
    workers = f"{speed.workers} worker{'s' if speed.workers != 1 else ''}{threads}"
    return (f"grid: {speed.wall_seconds:.1f} s wall time, {speed.model_epochs} model-epochs trained, "
            f"{speed.model_epochs_per_s:.3f} model-epochs/s, {workers}")  # fmt: skip


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


BENCH_COLUMNS = (  # in order of importance: the row's model and mode, its time, then what the time means
    ("model", "left"), ("mode", "left"), ("s/epoch", "right"), ("vs seed loop", "right"), ("efficiency", "right"),
    ("test MSE", "right"), ("img/s", "right"), ("range", "right"), ("MSE vs ref", "right"),
)  # fmt: skip
BENCH_ORDER = ("model", "mode", "s/epoch", "range", "img/s", "vs seed loop", "efficiency", "test MSE", "MSE vs ref")
BENCH_HOW = "--wide shows every column (the terminal wraps), --json every field; the saved JSON has them all"


def bench_table(result: dict[str, Any], caption: str, width: int = 200, wide: bool = False) -> Fitted:
    """`aebench bench`: a row per model and mode, from `aebench.bench.run.run_bench`'s result; the columns that
    fit `width`, model, mode and time first."""
    rows = result["rows"]
    cells = {
        "model": [r["model"] for r in rows],
        "mode": [r["mode"] + (" (as fp32)" if r.get("bf16_as_fp32") else "") for r in rows],
        "s/epoch": [f"{r['epoch_s']:.3f}" for r in rows],
        "range": [_num(r.get("range"), "{:.0%}") for r in rows],  # None where one timing: no spread to show
        "img/s": [f"{r['samples_per_s']:,.0f}" for r in rows],
        "vs seed loop": [f"{r['speedup_vs_seed_loop']:.2f}x" for r in rows],
        "efficiency": [_num(r.get("efficiency"), "{:.2f}") for r in rows],
        "test MSE": [_num(r.get("test_mse"), "{:.5f}") for r in rows],
        "MSE vs ref": [_num(r.get("mse_vs_reference"), "{:.3f}") for r in rows],
    }
    title = (
        f"aebench bench on {result['device_name']} (torch {result['torch_version']}), {result['dataset']}, "
        f"{result['train_size']:,} images, batch {result['batch_size']}, {result['epochs']} epochs"
    )
    columns = [Col(name, cells[name], justify) for name, justify in BENCH_COLUMNS]  # type: ignore[arg-type]
    return fit_table(columns, width, order=BENCH_ORDER, keep=3, wide=wide, title=title, caption=caption)


def _num(value: Any, fmt: str) -> str:
    """A bench figure, "-" where the row has none (a NaN is shown: it is a finding, not a gap)."""
    return "-" if value is None else fmt.format(value)


def presets_table(rows: Sequence[dict[str, Any]]) -> Table:
    """`compare --list-presets`: each named grid, what it answers, its configs (times --seeds runs)."""
    table = Table(title="aebench compare --preset NAME (times --seeds runs each)")
    for col, justify in (("name", "left"), ("configs", "right"), ("question", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["name"], str(r["configs"]), r["question"])
    return table


def elsewhere_line(elsewhere: dict[str, str], here: str | None) -> str:
    """How many cells were skipped because another device trained them: their speeds are not this machine's."""
    devices = ", ".join(sorted(set(elsewhere.values())))
    return (
        f"{len(elsewhere)} cells skipped: done on another device ({devices}), not on {here}; their quality is the "
        "same experiment's, their speed that machine's; --here trains them here too, stored beside"
    )


def clock_line(check: dict[str, Any]) -> str:
    """The bench's clock check: an outer wall clock around one model's whole training against the time its
    reported throughput predicts for it (`aebench.bench.run.clock_check`)."""
    verdict = "agrees" if check["ok"] else "DISAGREES: a timer may miss work; do not trust the throughputs"
    return (
        f"clock check ({check['model']}, {check['epochs']} epochs): the wall clock around the training read "
        f"{check['measured_s']:.2f} s, the reported throughput predicts {check['predicted_s']:.2f} s "
        f"(ratio {check['ratio']:.2f}): {verdict}"
    )


# ---- `aebench report`'s table ----

# The report's columns in order of importance after the config and its test MSE; a column not named here
# (one the report adds later) comes after these, in the report's order.
REPORT_PRIORITY = (
    "test MSE", "MSE ×PCA", "params", "probe acc", "SSIM", "seeds", "MSE ×best", "train img/s", "MFLOPs/img",
    "infer img/s",
    "PSNR (dB)", "latent", "compression (×)", "epoch (s)", "peak mem (MB)", "peak RSS (MB)",
)  # fmt: skip


def report_table(report: Report, width: int = 200, wide: bool = False) -> Fitted:
    """The report's per-config table for the terminal: the config label, then the columns that fit `width` in
    order of importance; the best cell of each column in bold green."""
    summary, best = report.summary, report.best
    axis_headers = {a.replace("_", " ") for a in report.configs.attrs.get("axes", [])}
    shown = [c for c in summary.columns if c not in axis_headers]
    rank = {h: i for i, h in enumerate(REPORT_PRIORITY)}
    ranked = sorted(shown, key=lambda c: (rank.get(str(c), len(rank)), shown.index(c)))

    def col(name: str) -> Col:
        values = [str(v) for v in summary[name]]
        marks = [bool(best.at[i, name]) for i in summary.index]
        texts = [Text(v, style="bold green" if m else "") for v, m in zip(values, marks, strict=True)]
        numeric = all(v[:1].isdigit() or v == "-" for v in values)
        return Col(str(name), texts, "right" if numeric else "left")

    columns = [Col("config", [str(label) for label in report.configs["label"]]), *[col(c) for c in ranked]]
    sel = report.selection
    title = (
        f"aebench report: {len(sel.runs)} runs in {len(report.configs)} configs (mean ± 95% CI over seeds; bold: best)"
    )
    return fit_table(columns, width, order=["config", *map(str, shown)], wide=wide, title=title)


def report_how(report: Report) -> str:
    """Where a report's columns left out of the terminal are."""
    return f"--wide shows every column (the terminal wraps); report.md, index.html, runs.csv in {report.out} have all"
