"""`aebench report`: a results store as CSV, tables, plots, report.md and a self-contained index.html.

Only finished (`done`) runs are reported; the others are counted and listed. Runs are grouped
by config (every config axis but the seed) and each metric is the mean ± 95% CI over seeds.
The store is only read; every file is written atomically, so an interrupted report never
leaves half a PNG behind.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd
from matplotlib.figure import Figure

from aebench.columns import axis_label, config_label, missing
from aebench.config import DEPTHS, split_list
from aebench.errors import BadInput
from aebench.grid.store import open_store
from aebench.models.external import NoCodes
from aebench.report import convergence, pareto, pictures, plots, stats, tables
from aebench.report import folder as report_folder
from aebench.report import pages as report_pages
from aebench.report.arrays import PictureArrays
from aebench.report.baseline import against_baseline, read_baseline
from aebench.report.contents import Drawn, Report, Selection
from aebench.report.environment import environment
from aebench.report.plots import Skipped
from aebench.report.style import config_colors
from aebench.report.tables import AXES, TABLE_METRICS, adjusted, answers_table, findings, summary_tables
from aebench.train.checkpoint import atomic_write

FORMATS = ("md", "html")
PLOTS: tuple[str, ...] = (
    "learning_curves",
    "mse_vs_latent",
    "mse_by_depth",
    "stride_vs_pool",
    "pareto_params",
    "pareto_flops",
    "throughput",
    *pictures.NAMES,
)
PAGES = {"md": "report.md", "html": "index.html"}
FIGURES = ("png", "svg")  # PNG for pages, SVG for print; a report kept in git may want PNG alone
PNG_DPI = 110


# ---- parsing the options ----


def _subset(flag: str, text: str, allowed: Sequence[str]) -> tuple[str, ...]:
    items = split_list(flag, text)
    for item in items:
        if item not in allowed:
            raise BadInput(f"{flag}: unknown value {item!r}; choose from: {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def parse_formats(text: str) -> tuple[str, ...]:
    return _subset("--format", text, FORMATS)


def parse_figures(text: str) -> tuple[str, ...]:
    return _subset("--figures", text, FIGURES)


def parse_only(text: str | None) -> tuple[str, ...]:
    return PLOTS if text is None else _subset("--only", text, PLOTS)


def parse_where(text: str) -> dict[str, tuple[str, ...]]:
    """'depth=deep,latent_dim=16|32' -> {'depth': ('deep',), 'latent_dim': ('16', '32')}.

    `|` separates alternatives; a piece with no `=` continues the previous value, so that
    `hidden=512,256` keeps its comma.
    """
    pairs: list[list[str]] = []
    for piece in text.split(","):
        if "=" in piece:
            key, value = piece.split("=", 1)
            pairs.append([key.strip(), value.strip()])
        elif pairs and piece.strip():
            pairs[-1][1] += "," + piece.strip()
        else:
            raise BadInput(f"--where: {text!r} is not a comma list of key=value, e.g. depth=deep,latent_dim=16")
    where: dict[str, tuple[str, ...]] = {}
    for key, value in pairs:
        values = tuple(v.strip() for v in value.split("|"))
        if not key or any(not v for v in values):
            raise BadInput(f"--where: {key}={value!r} needs a column name and a value, e.g. depth=deep")
        where[key] = where.get(key, ()) + values
    return where


# ---- reading the store ----


def select(results: str | Path, where: str | Mapping[str, Sequence[str]] | None = None) -> Selection:
    """The runs of `<results>/aebench.db` matching `where` (column = value, bound, never pasted)."""
    filters = parse_where(where) if isinstance(where, str) else {k: tuple(v) for k, v in (where or {}).items()}
    with open_store(results, create=False) as store:
        columns = [str(row[1]) for row in store.conn.execute("PRAGMA table_info(runs)")]
        for key in filters:
            if key not in columns:
                raise BadInput(f"--where: unknown column {key!r}; choose from: {', '.join(columns)}")
        # The names are checked against the table's own columns above; only values are parameters.
        clause = " AND ".join(f'"{k}" IN ({", ".join("?" for _ in v)})' for k, v in filters.items())
        params = [value for values in filters.values() for value in values]
        sql = f"SELECT * FROM runs {'WHERE ' + clause if clause else ''} ORDER BY claimed_at, run_id"
        try:
            runs = pd.read_sql_query(sql, store.conn, params=params)
        except sqlite3.Error as exc:
            raise BadInput(f"--where: cannot filter the store by {where!r} ({exc})") from None
        epochs = store.epochs()
        path = store.path
    if runs.empty:
        if filters:
            raise BadInput(f"no runs in {path} match --where {_where_text(filters)}")
        raise BadInput(f"no runs in {path}; run aebench compare first")
    done = runs[runs["status"] == "done"].reset_index(drop=True)
    if done.empty:
        counts = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
        raise BadInput(f"no finished runs to report in {path} ({counts}); run aebench compare to finish them")
    epochs = epochs[epochs["run_id"].isin(set(done["run_id"]))].reset_index(drop=True)
    left_out = runs[runs["status"] != "done"].reset_index(drop=True)
    return Selection(Path(results), done, epochs, left_out, filters)


def _where_text(filters: Mapping[str, Sequence[str]]) -> str:
    return ",".join(f"{k}={'|'.join(v)}" for k, v in filters.items())


# ---- grouping by config ----


def _sort_key(value: Any, axis: str) -> tuple[int, Any]:
    if missing(value):
        return (2, "")
    if axis == "depth" and value in DEPTHS:
        return (0, DEPTHS.index(value))
    return (0, float(value)) if isinstance(value, numbers.Real) else (1, str(value))


def by_config(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config: mean and std of each metric over seeds, the lowest seed's checkpoint."""
    axes = [a for a in AXES if a in runs.columns]
    keys = runs[axes].astype(object).where(runs[axes].notna(), None)
    runs = runs.assign(
        _key=[
            json.dumps([axis_label(a, v) for a, v in zip(axes, row, strict=True)])
            for row in keys.itertuples(index=False)
        ]
    )
    numeric = [c for c in TABLE_METRICS if c in runs.columns]
    rows = []
    for _, group in runs.sort_values("seed", kind="stable").groupby("_key", sort=False):
        first = group.iloc[0]
        row: dict[str, Any] = {a: first[a] for a in axes}
        row.update(run_id=first["run_id"], checkpoint=first.get("checkpoint"), seeds=len(group))
        row["seed_list"] = ",".join(str(int(s)) for s in group["seed"])
        for metric in numeric:
            values = pd.to_numeric(group[metric], errors="coerce")
            row[metric] = values.mean()
            row[f"{metric}_std"] = values.std() if len(group) > 1 else math.nan
            row[f"{metric}_ci95"] = stats.ci95(values.tolist())  # what tables and error bars show
            row[f"{metric}_values"] = values.tolist()  # the seeds, for the tests between configs
        if "curve" in group.columns:  # `convergence.with_curves` ran: the mean curve over seeds and which it is
            row["curve"] = convergence.mean_curve(list(group["curve"]))
            row["curve_kind"] = ", ".join(sorted({str(k) for k in group["curve_kind"] if k}))
            row["budget_epochs"] = pd.to_numeric(group["budget_epochs"], errors="coerce").mean()
        row["device_name"] = ", ".join(sorted({str(d) for d in group["device_name"].dropna()}))
        row["device"] = ", ".join(sorted({str(d) for d in group["device"].dropna()}))
        rows.append(row)
    configs = pd.DataFrame(rows)
    order = sorted(range(len(configs)), key=lambda i: [_sort_key(configs.iloc[i][a], a) for a in axes])
    configs = configs.iloc[order].reset_index(drop=True)
    varying = tables.varying_axes(configs)
    configs["label"] = [config_label(r, varying) for _, r in configs.iterrows()]
    configs.attrs["axes"] = varying
    return configs


def learning_curves(selection: Selection, configs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Mean train/test loss per (config, epoch) over seeds for the best MAX_LINES configs; how many were cut.
    Losses are as logged, with each config's `output` and `loss`, which the plot puts on the [0, 1] scale by."""
    axes = configs.attrs.get("axes") or tables.varying_axes(configs)
    labels = {str(r["run_id"]): config_label(r, axes) for _, r in selection.runs.iterrows()}
    ep = selection.epochs.assign(label=selection.epochs["run_id"].map(labels))
    keys = ["label", "epoch"]
    for col in ("output", "loss"):
        if col in selection.runs.columns:
            ep[col] = ep["run_id"].map(dict(zip(selection.runs["run_id"], selection.runs[col], strict=True)))
            keys.append(col)
    curves = ep.groupby(keys, sort=False, dropna=False)[["train_loss", "test_loss"]].mean().reset_index()
    ranked = [lab for lab in configs.sort_values("test_mse", kind="stable")["label"] if lab in set(curves["label"])]
    keep = ranked[: plots.MAX_LINES]
    curves = curves[curves["label"].isin(keep)]
    order = {lab: i for i, lab in enumerate(keep)}
    curves = curves.sort_values(["label", "epoch"], key=lambda s: s.map(order) if s.name == "label" else s)
    return curves.reset_index(drop=True), len(ranked) - len(keep)


def by_device(selection: Selection, configs: pd.DataFrame) -> pd.DataFrame:
    """`by_config` per device: one row per (config, device), labelled as in `configs`, for the speed plots, so
    that no bar or line averages two machines' samples/s."""
    axes = configs.attrs.get("axes") or tables.varying_axes(configs)
    runs = selection.runs.assign(device_name=selection.runs["device_name"].fillna("an unrecorded device"))
    parts = [by_config(part) for _, part in runs.groupby("device_name", sort=True)]
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = [config_label(r, axes) for _, r in frame.iterrows()]
    return frame


# ---- figures ----


CAPTIONS = {
    "learning_curves": "Learning curves: train and test loss per epoch on the [0, 1] pixel scale (a tanh run's "
    "losses, logged on [-1, 1] data, divided by 4 for MSE and by 2 for L1), one line per config, mean over "
    "seeds{cut}. A config has the same colour in every plot.",
    "mse_vs_latent": "Exercise 1: test MSE (left) and linear-probe accuracy (right) against latent dim, one line "
    "per config; PCA, the optimal linear code of each size, black and dashed where it was fitted{bars}.",
    "mse_by_depth": "Exercise 5: test MSE by depth at a fixed latent dim (is deeper better?); on each bar its test "
    "MSE, then its parameter count{bars}.",
    "stride_vs_pool": "Exercise 4: conv configs that differ only in downsampling, max-pool beside strided conv: "
    "test MSE, forward FLOPs per image and training images/s (speed measured on {devices}, one panel per "
    "device){bars}.",
    "pareto_params": "Test MSE against parameters, each config a numbered point named in the legend (the same "
    "number and colour in both Pareto plots): the red dashed line is the Pareto front, whose configs are numbered "
    "in red (no other config is both smaller and better). The log y axis is fitted to the front; a config more "
    "than twice the front's worst test MSE is a triangle on the top edge, its value in the legend{bars}.",
    "pareto_flops": "Test MSE against forward FLOPs per image, each config a numbered point named in the legend "
    "(the same number and colour in both Pareto plots): the red dashed line is the Pareto front, whose configs "
    "are numbered in red (no other config is both cheaper and better). The log y axis is fitted to the front; a "
    "config more than twice the front's worst test MSE is a triangle on the top edge, its value in the "
    "legend{bars}.",
    "throughput": "Training and inference throughput per config in samples/s (inference: the test set at the "
    "training batch size), measured on {devices}: one row of panels per device, so no bar mixes two "
    "machines{bars}.",
}


def _charts(selection: Selection, configs: pd.DataFrame) -> dict[str, Callable[[], tuple[Figure, str]]]:
    """The measurement charts by name, each drawing on call (so --only draws nothing it does not need)."""
    seeds = int(configs["seeds"].max())
    curves, cut = learning_curves(selection, configs)
    devices = ", ".join(sorted({d for ds in configs["device_name"] for d in ds.split(", ") if d}))
    colors = config_colors(configs["label"])  # one colour per config, in the report's order, in every chart
    speeds = by_device(selection, configs)
    losses = ", ".join(sorted(set(selection.runs["loss"].dropna())))
    words = {
        "bars": f"; error bars: 95% CI of the mean over {seeds} seeds" if seeds > 1 else "",
        "cut": f" ({cut} config{'s' if cut > 1 else ''} with higher test MSE left out)" if cut else "",
        "devices": devices or "an unrecorded device",
    }
    draw: dict[str, Callable[[], Figure]] = {
        "learning_curves": lambda: plots.plot_learning_curves(curves, losses, colors),
        "mse_vs_latent": lambda: plots.plot_mse_vs_latent(configs, colors),
        "mse_by_depth": lambda: plots.plot_mse_by_depth(configs, colors=colors),
        "stride_vs_pool": lambda: plots.plot_stride_vs_pool(configs, speeds),
        "pareto_params": lambda: pareto.plot_pareto(configs, "params", colors),
        "pareto_flops": lambda: pareto.plot_pareto(configs, "flops_per_sample", colors),
        "throughput": lambda: plots.plot_throughput(speeds, colors),
    }

    def chart(name: str) -> Callable[[], tuple[Figure, str]]:
        return lambda: (draw[name](), CAPTIONS[name].format(**words))

    return {name: chart(name) for name in draw}


def _pictures(source: PictureArrays) -> dict[str, Callable[[], tuple[Figure, str]]]:
    """The pictures of trained models by name: the models run (`arrays`) and their output drawn (`pictures`)
    on call, each loaded checkpoint shared by all of them."""
    return {
        "reconstructions": lambda: pictures.reconstructions(source.reconstructions()),
        "latent_space": lambda: pictures.latent_space(source.latent_space()),
        "latent_grid": lambda: pictures.latent_grid(source.latent_grid()),
        "interpolation": lambda: pictures.interpolation(source.interpolation()),
        "latent_arithmetic": lambda: pictures.latent_arithmetic(source.latent_arithmetic()),
        "feature_maps": lambda: pictures.feature_maps(source.feature_maps()),
    }


def _bytes(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    return write


def save_figure(fig: Figure, folder: Path, name: str, figures: Sequence[str] = FIGURES) -> list[Path]:
    """PNG (for pages) and SVG (for papers), each written atomically; SVG without a date, so reruns diff clean."""
    paths = []
    for ext in figures:
        buf = io.BytesIO()
        if ext == "png":
            fig.savefig(buf, format="png", dpi=PNG_DPI, facecolor="white")
        else:
            fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor="white")
        path = folder / f"{name}.{ext}"
        atomic_write(path, _bytes(buf.getvalue()))
        paths.append(path)
    return paths


def write_text(path: Path, text: str) -> Path:
    atomic_write(path, _bytes(text.encode()))
    return path


# ---- the report ----


def build_report(
    results: str | Path,
    out: str | Path | None = None,
    *,
    formats: Sequence[str] = FORMATS,
    only: Sequence[str] = PLOTS,
    where: str | Mapping[str, Sequence[str]] | None = None,
    data_dir: str | Path | None = None,
    baseline: str | Path | None = None,
    figures: Sequence[str] = FIGURES,
) -> Report:
    """Read the store, write CSVs, plots and pages to `out`, return what was done. `out` defaults to
    `<results>/report`, or beside it for a partial report (`--only`, `--where`; `aebench.report.folder`).
    With `baseline` (a folder a report wrote), each config's test MSE is judged against it (`report.baseline`)."""
    base_runs = None if baseline is None else read_baseline(Path(baseline))  # refused before anything is written
    for name in only:
        if name not in PLOTS:
            raise BadInput(f"--only: unknown plot {name!r}; choose from: {', '.join(PLOTS)}")
    for fmt in formats:
        if fmt not in FORMATS:
            raise BadInput(f"--format: unknown value {fmt!r}; choose from: {', '.join(FORMATS)}")
    if not figures or any(f not in FIGURES for f in figures):
        raise BadInput(f"--figures: give one or both of {', '.join(FIGURES)}")
    if "html" in formats and "png" not in figures:
        raise BadInput("--figures: index.html shows the PNGs inline; add png, or write --format md alone")
    selection = select(results, where)
    configs = by_config(convergence.with_curves(selection.runs, selection.epochs))
    summary, best, answer_list, not_ranked = summary_tables(configs)
    answer_list, found = adjusted(answer_list, findings(configs))  # one family: every comparison the report states
    # checked (a file, a folder that cannot be written, a full report a partial one would replace) before drawing
    folder, previous = report_folder.prepare(results, out, only, selection.where, PLOTS)
    report = Report(folder, selection, configs, summary, best, answers_table(answer_list), found,
                    answer_list=answer_list, not_ranked=not_ranked,
                    environment=environment(selection.runs))  # fmt: skip

    axes = configs.attrs["axes"]
    run_labels = [config_label(r, axes) for _, r in selection.runs.iterrows()]
    runs_csv = selection.runs.drop(columns=["config_json"], errors="ignore").assign(config=run_labels)
    report.files.append(write_text(folder / "runs.csv", runs_csv.to_csv(index=False)))
    by_run = dict(zip(selection.runs["run_id"], run_labels, strict=True))
    epochs_csv = selection.epochs.assign(config=selection.epochs["run_id"].map(by_run))
    report.files.append(write_text(folder / "epochs.csv", epochs_csv.to_csv(index=False)))
    if base_runs is not None:
        report.baseline = against_baseline(selection.runs, base_runs)

    draw = {**_charts(selection, configs), **_pictures(PictureArrays(selection.results, configs, data_dir))}
    for name in PLOTS:
        if name not in only:
            continue
        try:
            fig, caption = draw[name]()
        except (Skipped, NoCodes) as exc:  # NoCodes: a user's model without encode/decode has no codes to draw
            report.skipped[name] = str(exc)
            continue
        files = save_figure(fig, folder, name, figures)
        report.drawn.append(Drawn(name, caption, files))
        report.files += files
    for fmt in formats:
        page = report_pages.markdown(report) if fmt == "md" else report_pages.html_page(report)
        report.files.append(write_text(folder / PAGES[fmt], page))
    full = report_folder.is_full(only, selection.where, PLOTS)
    selected = {"full": full, "only": list(only), "where": {k: list(v) for k, v in selection.where.items()}}
    report_folder.finish(folder, report.files, previous, selected, _OURS)
    return report


# aebench's own file names: what a full report may remove from a folder an older aebench wrote without a manifest
_OURS = {f"{n}.{ext}" for n in PLOTS for ext in ("png", "svg")} | set(PAGES.values())
