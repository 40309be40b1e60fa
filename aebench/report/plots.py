"""The report's charts of measurements: one pure function per figure, a DataFrame in, a Figure out.

Each function takes the per-config table (`aebench.report.by_config`: one row per config, the
mean of each metric over seeds, `<metric>_std`, `seeds` and a `label`) and returns a
`matplotlib.figure.Figure` built without pyplot, so nothing global changes and nothing is
shown. A figure that would be empty, or would answer nothing (an axis with one value),
raises `Skipped` with the reason instead, so the report can say why it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation

from aebench.columns import config_label, missing, plain
from aebench.config import DEPTHS
from aebench.report.tables import pareto_front, si, varying_axes

MAX_LINES = 12  # more lines than this on one chart stop being tellable apart
MAX_BAR_SERIES = 6  # bars per depth group: past this they are too thin to label
PARETO_COLOR = "#d62728"


class Skipped(Exception):
    """A figure was not drawn because it would be empty or show one value; the message says why."""


def new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas: no pyplot, no backend selection, safe in any thread."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _std(df: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Error bars where some config has two or more seeds; None (no bars) otherwise."""
    col = f"{metric}_std"
    if col not in df.columns or df[col].isna().all():
        return None
    return np.asarray(df[col].fillna(0.0), dtype=float)


class _LogFormatter(LogFormatterSciNotation):
    """matplotlib's choice of which log ticks to label, written plainly (20k, 0.02) instead of 2x10^4."""

    def __init__(self, fmt: Callable[[float], str], **kw: Any) -> None:
        super().__init__(**kw)
        self.fmt = fmt

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.fmt(x) if super().__call__(x, pos) else ""


def plain_axis(axis: Any, log: bool = False, fmt: Callable[[float], str] = si) -> None:
    """Tick labels as 20k, 1.5M (or 0.02): readable at a glance, and like the numbers on the bars."""
    if log:
        axis.set_major_formatter(_LogFormatter(fmt))
        axis.set_minor_formatter(_LogFormatter(fmt, labelOnlyBase=False))
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v) if v else "0"))


def _need(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    present = df.dropna(subset=[c for c in cols if c in df.columns])
    if any(c not in df.columns for c in cols) or present.empty:
        raise Skipped(f"no run has {', '.join(cols)}")
    return present


def _cap(df: pd.DataFrame, series: list[str], limit: int) -> tuple[list[str], str]:
    """The `limit` series with the lowest test MSE, in their first order, and a footnote if some were cut."""
    if len(series) <= limit:
        return series, ""
    best = df.groupby("series")["test_mse"].min()
    keep = set(sorted(series, key=lambda s: best[s])[:limit])
    return [s for s in series if s in keep], f"{len(series) - limit} series with higher test MSE left out"


def _footnote(fig: Figure, text: str) -> None:
    if text:
        fig.supxlabel(text, fontsize="small", color="#555555")


def _grid(ax: Axes, axis: str = "both") -> None:
    ax.grid(True, axis=axis, alpha=0.3)  # type: ignore[arg-type]
    ax.set_axisbelow(True)


# ---- 1. learning curves ----


def plot_learning_curves(curves: pd.DataFrame, loss: str = "mse") -> Figure:
    """Train and test loss per epoch, one line per config.

    Args:
        curves: one row per (label, epoch) with the mean `train_loss` and `test_loss` over seeds.
        loss: the training loss's name, for the y label.
    """
    epochs_per = curves.groupby("label")["epoch"].nunique()
    if curves.empty or epochs_per.max() < 2:
        raise Skipped("every run has one epoch, so there is no curve to draw (train with --epochs 2 or more)")
    labels = list(dict.fromkeys(curves["label"]))
    fig = new_figure(12, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, title in zip(axes, ("train_loss", "test_loss"), ("train loss", "test loss"), strict=True):
        for color, name in zip(_colors(len(labels)), labels, strict=True):
            one = curves[curves["label"] == name].sort_values("epoch")
            ax.plot(one["epoch"], one[col], marker="o", markersize=3, color=color, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        plain_axis(ax.yaxis, log=True, fmt=lambda v: f"{v:.3g}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _grid(ax)
    axes[0].set_ylabel(f"{loss} loss per pixel (log scale)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize="small", title="config")
    return fig


# ---- 2. quality against latent dim (Exercise 1) ----


def plot_mse_vs_latent(df: pd.DataFrame) -> Figure:
    """Test MSE and probe accuracy against latent dim, one line per (arch, depth, ...)."""
    df = _need(df, "latent_dim", "test_mse")
    dims = sorted({int(v) for v in df["latent_dim"]})
    if len(dims) < 2:
        raise Skipped(f"only one latent dim ({dims[0]}) in the selected runs; compare with --latent-dims 2,16,32")
    axes_ = varying_axes(df)
    df = df.assign(series=[config_label(r, axes_, drop=("latent_dim",)) for _, r in df.iterrows()])
    sizes = df.groupby("series")["latent_dim"].nunique()
    series = [s for s in dict.fromkeys(df["series"]) if sizes[s] >= 2]
    if not series:
        raise Skipped("no config was run at two or more latent dims")
    series, cut = _cap(df, series, MAX_LINES)
    fig = new_figure(12, 4.6)
    _footnote(fig, cut)
    ax_mse, ax_probe = fig.subplots(1, 2)
    for color, name in zip(_colors(len(series)), series, strict=True):
        one = df[df["series"] == name].sort_values("latent_dim")
        for ax, metric in ((ax_mse, "test_mse"), (ax_probe, "probe_acc")):
            if one[metric].isna().all():
                continue
            ax.errorbar(
                one["latent_dim"], one[metric], yerr=_std(one, metric), marker="o", capsize=3, color=color, label=name
            )
    for ax in (ax_mse, ax_probe):
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("latent dim (log scale)")
        _grid(ax)
    ax_mse.set_ylabel("test MSE per pixel ([0, 1] scale, lower is better)")
    ax_mse.set_title("reconstruction error")
    ax_probe.set_ylabel("linear-probe accuracy on test codes (higher is better)")
    ax_probe.set_title("how much class information the codes keep")
    if len(series) > 5:  # a long legend inside the axes would cover the lines
        handles, names = ax_mse.get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right upper", fontsize="small", title="config")
    else:
        ax_mse.legend(fontsize="small", title="config")
    return fig


# ---- 3. quality by depth at a fixed latent dim (Exercise 5) ----


def plot_mse_by_depth(df: pd.DataFrame, max_panels: int = 3) -> Figure:
    """Grouped bars of test MSE per depth, one panel per latent dim that has two or more depths."""
    df = _need(df, "depth", "test_mse")
    depths = [d for d in DEPTHS if d in set(df["depth"])]
    if len(depths) < 2:
        raise Skipped(f"only one depth ({depths[0]}) in the selected runs; compare with --depths shallow,medium,deep")
    by_latent = df.dropna(subset=["latent_dim"]).groupby("latent_dim")["depth"].nunique()
    latents = [lat for lat in by_latent.index if by_latent[lat] >= 2]
    if not latents:
        raise Skipped("no latent dim was run at two or more depths")
    # The seed's Exercise 5 fixes latent 32: show it first when present, then the best-covered ones.
    latents = sorted(latents, key=lambda lat: (lat != 32, -by_latent[lat], lat))[:max_panels]
    axes_ = varying_axes(df)
    df = df.assign(series=[config_label(r, axes_, drop=("depth", "latent_dim")) for _, r in df.iterrows()])
    series, cut = _cap(df, list(dict.fromkeys(df[df["latent_dim"].isin(latents)]["series"])), MAX_BAR_SERIES)
    colors = dict(zip(series, _colors(len(series)), strict=True))
    fig = new_figure(max(6.0, 4.8 * len(latents)) + 2, 4.8)
    axes = np.atleast_1d(fig.subplots(1, len(latents), sharey=True))
    for ax, lat in zip(axes, sorted(latents), strict=True):
        part = df[df["latent_dim"] == lat]
        names = [s for s in series if s in set(part["series"])]
        if not names:
            continue
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            one = part[part["series"] == name].set_index("depth").reindex(depths)
            x = np.arange(len(depths)) + (i - (len(names) - 1) / 2) * width
            bars = ax.bar(
                x, one["test_mse"], width, yerr=_std(one, "test_mse"), capsize=3, color=colors[name], label=name
            )
            # Past three bars a group is too narrow for two stacked lines: one line, turned upright.
            upright = len(names) > 3
            texts = [
                "" if missing(m) else f"{m:.4f}" + ("" if missing(p) else f"{' · ' if upright else chr(10)}{si(p)}")
                for m, p in zip(one["test_mse"], one["params"], strict=True)
            ]
            ax.bar_label(bars, texts, padding=2, fontsize="x-small", rotation=90 if upright else 0)
        ax.set_xticks(np.arange(len(depths)), depths)
        ax.set_xlabel("depth")
        ax.set_title(f"latent dim {plain(lat)}")
        ax.margins(y=0.3 if len(names) > 3 else 0.12)
        _grid(ax, "y")
    axes[0].set_ylabel("test MSE per pixel (lower is better)")
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(n, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize="small", title="config")
    fig.suptitle("Is deeper better? (on each bar: test MSE, then parameters)")
    _footnote(fig, cut)
    return fig


# ---- 4. stride against pool (Exercise 4) ----


def plot_stride_vs_pool(df: pd.DataFrame) -> Figure:
    """Paired bars of test MSE and parameters for conv configs that differ only in downsampling."""
    df = _need(df, "downsample", "test_mse")
    kinds = sorted(set(df["downsample"]))
    if kinds != ["pool", "stride"]:
        raise Skipped(
            f"only {', '.join(kinds)} in the selected conv runs; compare with --archs conv --downsample pool,stride"
        )
    axes_ = varying_axes(df)
    df = df.assign(pair=[config_label(r, axes_, drop=("downsample",)) for _, r in df.iterrows()])
    both = df.groupby("pair")["downsample"].nunique()
    pairs = [p for p in dict.fromkeys(df["pair"]) if both[p] == 2]
    if not pairs:
        raise Skipped("no conv config was run with both pool and stride")
    fig = new_figure(max(9.0, 1.6 * len(pairs) + 6), 4.6)
    axes = fig.subplots(1, 2)
    width = 0.38
    metrics = (("test_mse", "test MSE per pixel (lower is better)", "{:.4f}"), ("params", "parameters", "{}"))
    for ax, (metric, ylabel, fmt) in zip(axes, metrics, strict=True):
        for i, (kind, color) in enumerate((("pool", "#1f77b4"), ("stride", "#ff7f0e"))):
            one = df[df["downsample"] == kind].set_index("pair").reindex(pairs)
            x = np.arange(len(pairs)) + (i - 0.5) * width
            bars = ax.bar(
                x,
                one[metric],
                width,
                yerr=_std(one, metric) if metric != "params" else None,
                capsize=3,
                color=color,
                label=kind,
            )
            texts = [si(v) if metric == "params" else fmt.format(v) for v in one[metric]]
            ax.bar_label(bars, texts, fontsize="x-small", padding=2)
        ax.set_xticks(
            np.arange(len(pairs)),
            pairs,
            rotation=20 if len(pairs) > 3 else 0,
            ha="right" if len(pairs) > 3 else "center",
        )
        ax.set_ylabel(ylabel)
        ax.margins(y=0.12)
        _grid(ax, "y")
    plain_axis(axes[1].yaxis)
    axes[0].set_title("reconstruction error")
    axes[1].set_title("model size")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title="downsampling", loc="outside right upper")
    return fig


# ---- 5. quality against cost: the Pareto front ----


def plot_pareto(df: pd.DataFrame, x: str = "params") -> Figure:
    """Test MSE against parameters (or FLOPs) for every config, the Pareto front drawn and named."""
    what = {"params": "parameters", "flops_per_sample": "forward FLOPs per image"}[x]
    df = _need(df, x, "test_mse")
    if df[x].nunique() < 2:
        raise Skipped(f"every selected config has the same {what} ({si(df[x].iloc[0])})")
    front = pareto_front(df, x)
    fig = new_figure(11, 5.6)
    ax = fig.subplots()
    archs = list(dict.fromkeys(df["arch"]))
    markers = dict(zip(archs, "osD^v<>p*h", strict=False))
    for color, arch in zip(_colors(len(archs)), archs, strict=True):
        part = df[df["arch"] == arch]
        ax.errorbar(
            part[x],
            part["test_mse"],
            yerr=_std(part, "test_mse"),
            fmt=markers.get(arch, "o"),
            color=color,
            capsize=3,
            markersize=7,
            label=arch,
            alpha=0.85,
        )
    ax.step(
        front[x],
        front["test_mse"],
        where="post",
        color=PARETO_COLOR,
        linestyle="--",
        linewidth=1.3,
        label=f"Pareto front: no config beats these on both axes ({len(front)}, named in red)",
    )
    ax.scatter(front[x], front["test_mse"], s=160, facecolors="none", edgecolors=PARETO_COLOR, linewidths=1.5)
    on_front = set(front.index)
    named = df if len(df) <= MAX_LINES else front  # past a dozen names the chart is all text
    first = front.index[0]
    for idx, row in named.iterrows():
        # Below the front's staircase nothing lies: every other point is above-right of it. So a
        # front name goes below-left of its point (below-right for the first, by the y axis).
        on = idx in on_front
        left = on and idx != first
        ax.annotate(
            row["label"],
            (row[x], row["test_mse"]),
            xytext=(-8, -8) if left else (8, -8) if on else (7, 6),
            textcoords="offset points",
            ha="right" if left else "left",
            va="top" if on else "bottom",
            fontsize="small",
            color=PARETO_COLOR if on else "#555555",
            fontweight="bold" if on else "normal",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
        )
    ax.set_xscale("log")
    plain_axis(ax.xaxis, log=True)
    ax.set_xlabel(f"{what} (log scale)")
    ax.set_ylabel("test MSE per pixel (lower is better)")
    ax.set_title(f"Test MSE against {what}")
    ax.margins(x=0.15, y=0.15)
    _grid(ax)
    ax.legend(fontsize="small")
    return fig


# ---- 6. throughput ----


def plot_throughput(df: pd.DataFrame, device: str = "") -> Figure:
    """Horizontal bars of training and inference samples/s per config."""
    df = _need(df, "train_samples_per_s")
    if len(df) < 2:
        raise Skipped("one config only: nothing to compare its throughput with")
    names = list(df["label"])
    fig = new_figure(12, 1.2 + 0.38 * len(names))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(names))
    for ax, metric, title in zip(
        axes,
        ("train_samples_per_s", "infer_samples_per_s"),
        ("training", "inference (test set, training batch size)"),
        strict=True,
    ):
        values = df[metric].to_numpy(dtype=float)
        std = _std(df, metric)
        shown = values[np.isfinite(values) & (values > 0)]
        # fc and conv differ by 10-100x: on a linear axis the slow bars vanish, so go log past 20x.
        log = shown.size > 0 and shown.max() / shown.min() > 20
        base = 10 ** math.floor(math.log10(shown.min() / 2)) if log else 0.0
        # Error bars never reach below the axis' start (a std can exceed a noisy mean).
        xerr = None if std is None else np.vstack([np.clip(np.minimum(std, values - base * 1.05), 0, None), std])
        bars = ax.barh(y, values - base, left=base, xerr=xerr, capsize=2, color=_colors(len(names)))
        ax.bar_label(bars, [si(v) if not math.isnan(v) else "" for v in values], padding=3, fontsize="x-small")
        ax.set_title(title)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(left=base)
        plain_axis(ax.xaxis, log=log)
        ax.set_xlabel("samples/s (higher is better" + (", log scale)" if log else ")"))
        ax.margins(x=0.15)
        _grid(ax, "x")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()  # the table's order, top to bottom
    if device:
        fig.suptitle(f"Throughput on {device}")
    return fig
