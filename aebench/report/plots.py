"""The report's charts of measurements: one pure function per figure, a DataFrame in, a Figure out.

Each function takes the per-config table (`aebench.report.by_config`: one row per config, the
mean of each metric over seeds, `<metric>_std`, `seeds` and a `label`) and returns a
`matplotlib.figure.Figure` built without pyplot, so nothing global changes and nothing is
shown. A figure that would be empty, or would answer nothing (an axis with one value),
raises `Skipped` with the reason instead, so the report can say why it is missing.

Each also takes the report's colour map (config label -> colour, `aebench.report.style`), so a
config has one colour in every chart; speeds are drawn per device (`device_name`), never one bar
of two machines. The Pareto charts are in `aebench.report.pareto`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aebench.columns import config_label, missing, plain
from aebench.config import DEPTHS
from aebench.report.style import (
    Colors,
    colors_for,
    footnote,
    grid,
    in_order,
    new_figure,
    one_device,
    per_device,
    plain_axis,
    series_colors,
    std,
)
from aebench.report.tables import si, varying_axes

MAX_LINES = 12  # more lines than this on one chart stop being tellable apart
MAX_BAR_SERIES = 6  # bars per depth group: past this they are too thin to label
DOWNSAMPLE_COLORS = {"pool": "#4c72b0", "stride": "#dd8452"}  # two kinds of layer, not configs: muted shades
# A tanh output trains on data scaled to [-1, 1] (`aebench.data.to_device`), twice the [0, 1] range: its squared
# errors are 4x and its absolute errors 2x what they are on the [0, 1] pixel scale (BCE needs sigmoid).
TO_UNIT_SCALE = {("tanh", "mse"): 0.25, ("tanh", "l1"): 0.5}


class Skipped(Exception):
    """A figure was not drawn because it would be empty or show one value; the message says why."""


# What a plot lacks when the selected runs have no value in a column, and the command whose runs have one.
_NEEDS = {
    "latent_dim": ("no selected run has a latent dim to vary (fc, conv and seed-flexible take one)",
                   "aebench compare --archs fc --latent-dims 2,16,32"),
    "depth": ("no selected run has a depth (fc and conv do)", "aebench compare --depths shallow,medium,deep"),
    "downsample": ("no selected run is a conv model, the one with pool or stride",
                   "aebench compare --archs conv --downsample pool,stride"),
    "train_samples_per_s": ("no selected run has a measured throughput", "aebench compare --archs fc,conv"),
}  # fmt: skip


def _need(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    present = df.dropna(subset=[c for c in cols if c in df.columns])
    if any(c not in df.columns for c in cols) or present.empty:
        lacking = [c for c in cols if c not in df.columns or df[c].isna().all()] or list(cols)
        what, command = _NEEDS.get(lacking[0], (f"no selected run has a {lacking[0]} value", "aebench compare"))
        raise Skipped(f"{what}; draw it with {command}")
    return present


def _cap(df: pd.DataFrame, series: list[str], limit: int) -> tuple[list[str], str]:
    """The `limit` series with the lowest test MSE, in their first order, and a footnote if some were cut."""
    if len(series) <= limit:
        return series, ""
    best = df.groupby("series")["test_mse"].min()
    keep = set(sorted(series, key=lambda s: best[s])[:limit])
    return [s for s in series if s in keep], f"{len(series) - limit} series with higher test MSE left out"


# ---- 1. learning curves ----


def to_unit_scale(curves: pd.DataFrame) -> pd.DataFrame:
    """Train and test losses on the [0, 1] pixel scale: a tanh run's, logged on its [-1, 1] data, divided down
    (by 4 for MSE, 2 for L1) so that its curve compares with a sigmoid run's. Rows need `output` and `loss`."""
    if "output" not in curves.columns or "loss" not in curves.columns:
        return curves
    factor = [TO_UNIT_SCALE.get((str(o), str(f)), 1.0) for o, f in zip(curves["output"], curves["loss"], strict=True)]
    return curves.assign(train_loss=curves["train_loss"] * factor, test_loss=curves["test_loss"] * factor)


def plot_learning_curves(curves: pd.DataFrame, loss: str = "mse", colors: Colors | None = None) -> Figure:
    """Train and test loss per epoch on the [0, 1] pixel scale, one line per config.

    Args:
        curves: one row per (label, epoch) with the mean `train_loss` and `test_loss` over seeds, as logged,
            and the run's `output` and `loss` to put tanh runs on the [0, 1] scale (`to_unit_scale`).
        loss: the training loss's name, for the y label.
        colors: the report's colour per config label (`aebench.report.style.config_colors`).
    """
    epochs_per = curves.groupby("label")["epoch"].nunique()
    if curves.empty or epochs_per.max() < 2:
        raise Skipped(
            "every selected run has one epoch, so there is no curve to draw; draw it with aebench compare --epochs 5"
        )
    curves = to_unit_scale(curves)
    colors = colors_for(list(curves["label"]), colors)
    labels = in_order(curves["label"], colors)
    fig = new_figure(12, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, title in zip(axes, ("train_loss", "test_loss"), ("train loss", "test loss"), strict=True):
        for name in labels:
            one = curves[curves["label"] == name].sort_values("epoch")
            ax.plot(one["epoch"], one[col], marker="o", markersize=3, color=colors[name], label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        plain_axis(ax.yaxis, log=True, fmt=lambda v: f"{v:.3g}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        grid(ax)
    axes[0].set_ylabel(f"{loss} loss per pixel, [0, 1] pixel scale (log scale)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize="small", title="config")
    return fig


# ---- 2. quality against latent dim (Exercise 1) ----


def _series_colors(df: pd.DataFrame, colors: Colors | None) -> dict[str, Any]:
    labels = list(df["label"] if "label" in df.columns else df["series"])
    return series_colors(labels, list(df["series"]), colors)


def plot_mse_vs_latent(df: pd.DataFrame, colors: Colors | None = None) -> Figure:
    """Test MSE and probe accuracy against latent dim, one line per (arch, depth, ...) in its first config's colour."""
    df = _need(df, "latent_dim", "test_mse")
    dims = sorted({int(v) for v in df["latent_dim"]})
    if len(dims) < 2:
        raise Skipped(
            f"only one latent dim ({dims[0]}) in the selected runs; draw it with aebench compare --latent-dims 2,16,32"
        )
    axes_ = varying_axes(df)
    df = df.assign(series=[config_label(r, axes_, drop=("latent_dim",)) for _, r in df.iterrows()])
    sizes = df.groupby("series")["latent_dim"].nunique()
    series = [s for s in dict.fromkeys(df["series"]) if sizes[s] >= 2]
    if not series:
        raise Skipped(
            "no config was run at two or more latent dims; draw it with aebench compare --latent-dims 2,16,32"
        )
    series, cut = _cap(df, series, MAX_LINES)
    palette = _series_colors(df, colors)
    fig = new_figure(12, 4.6)
    footnote(fig, cut)
    ax_mse, ax_probe = fig.subplots(1, 2)
    for name in series:
        one = df[df["series"] == name].sort_values("latent_dim")
        # PCA, the optimal linear code at each size, is the bar the others are drawn against: black, dashed
        pca = set(one["arch"]) == {"pca"}
        style = {"color": "black", "ls": "--", "label": "PCA (linear baseline)"} if pca else {
            "color": palette[name], "label": name}  # fmt: skip
        for ax, metric in ((ax_mse, "test_mse"), (ax_probe, "probe_acc")):
            if not one[metric].isna().all():
                ax.errorbar(one["latent_dim"], one[metric], yerr=std(one, metric), marker="o", capsize=3, **style)
    for ax in (ax_mse, ax_probe):
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("latent dim (log scale)")
        grid(ax)
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


def plot_mse_by_depth(df: pd.DataFrame, max_panels: int = 3, colors: Colors | None = None) -> Figure:
    """Grouped bars of test MSE per depth, one panel per latent dim that has two or more depths; on each bar its
    test MSE and its parameter count, each series in its first config's colour."""
    df = _need(df, "depth", "test_mse")
    depths = [d for d in DEPTHS if d in set(df["depth"])]
    if len(depths) < 2:
        raise Skipped(
            f"only one depth ({depths[0]}) in the selected runs; draw it with aebench compare "
            "--depths shallow,medium,deep"
        )
    by_latent = df.dropna(subset=["latent_dim"]).groupby("latent_dim")["depth"].nunique()
    latents = [lat for lat in by_latent.index if by_latent[lat] >= 2]
    if not latents:
        raise Skipped(
            "no latent dim was run at two or more depths; draw it with aebench compare --depths shallow,medium,deep"
        )
    # The seed's Exercise 5 fixes latent 32: show it first when present, then the best-covered ones.
    latents = sorted(latents, key=lambda lat: (lat != 32, -by_latent[lat], lat))[:max_panels]
    axes_ = varying_axes(df)
    df = df.assign(series=[config_label(r, axes_, drop=("depth", "latent_dim")) for _, r in df.iterrows()])
    series, cut = _cap(df, list(dict.fromkeys(df[df["latent_dim"].isin(latents)]["series"])), MAX_BAR_SERIES)
    palette = _series_colors(df, colors)
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
                x, one["test_mse"], width, yerr=std(one, "test_mse"), capsize=3, color=palette[name], label=name
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
        grid(ax, "y")
    axes[0].set_ylabel("test MSE per pixel (lower is better)")
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(n, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize="small", title="config")
    fig.suptitle("Exercise 5: is deeper better? (on each bar: test MSE, then parameters)")
    footnote(fig, cut)
    return fig


# ---- 4. stride against pool (Exercise 4) ----


def _pair_bars(
    ax: Any, frame: pd.DataFrame, pairs: list[str], metric: str, text: Callable[[float], str], tilt: bool
) -> None:
    """Pool beside stride for each pair, the value on each bar written by `text`; error bars where seeds differ."""
    width = 0.38
    for i, kind in enumerate(DOWNSAMPLE_COLORS):
        one = frame[frame["downsample"] == kind].set_index("pair").reindex(pairs)
        x = np.arange(len(pairs)) + (i - 0.5) * width
        yerr = std(one, metric)
        bars = ax.bar(x, one[metric], width, yerr=yerr, capsize=3, color=DOWNSAMPLE_COLORS[kind], label=kind)
        ax.bar_label(bars, ["" if missing(v) else text(v) for v in one[metric]], fontsize="x-small", padding=2)
    ax.set_xticks(np.arange(len(pairs)), pairs, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.margins(y=0.12)
    grid(ax, "y")


def plot_stride_vs_pool(df: pd.DataFrame, speeds: pd.DataFrame | None = None) -> Figure:
    """Exercise 4 for conv configs that differ only in downsampling: test MSE, forward FLOPs per image and
    training speed, pool beside stride; one speed panel per device.

    Args:
        df: the per-config table.
        speeds: one row per (config, device) with `device_name` and `train_samples_per_s` (the report's
            `aebench.report.build.by_device`); default `df`, whose configs each ran on one device.
    """
    df = _need(df, "downsample", "test_mse")
    kinds = sorted(set(df["downsample"]))
    if kinds != ["pool", "stride"]:
        raise Skipped(
            f"only {', '.join(kinds)} in the selected conv runs; draw it with aebench compare --archs conv "
            "--downsample pool,stride"
        )
    axes_ = varying_axes(df)

    def paired(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["downsample"].isin(list(DOWNSAMPLE_COLORS))]
        return frame.assign(pair=[config_label(r, axes_, drop=("downsample",)) for _, r in frame.iterrows()])

    df = paired(df)
    both = df.groupby("pair")["downsample"].nunique()
    pairs = [p for p in dict.fromkeys(df["pair"]) if both[p] == 2]
    if not pairs:
        raise Skipped(
            "no conv config was run with both pool and stride; draw it with aebench compare --archs conv "
            "--downsample pool,stride"
        )
    panels: list[tuple[pd.DataFrame, str, str, str, Callable[[float], str]]] = [
        (df, "test_mse", "test MSE per pixel (lower is better)", "reconstruction error", "{:.4f}".format)
    ]
    if "flops_per_sample" in df.columns and df["flops_per_sample"].notna().any():
        panels.append((df, "flops_per_sample", "forward FLOPs per image (lower is cheaper)", "forward pass cost", si))
    speed = paired(speeds if speeds is not None else df)
    if "train_samples_per_s" in speed.columns:
        for device, part in per_device(speed[speed["pair"].isin(pairs)].dropna(subset=["train_samples_per_s"])):
            ylabel, title = "training images/s (higher is better)", f"training speed on {device}"
            panels.append((part, "train_samples_per_s", ylabel, title, "{:,.0f}".format))
    width = max(3.8, 0.8 * len(pairs) + 1.6)
    tilt = len(pairs) * (0.075 * max(len(p) for p in pairs) + 0.15) > width - 0.9  # the names would run together
    # Side by side while the figure fits a page (16 in), else one panel a row, each as wide as it needs.
    side = len(panels) * width + 1.4 <= 16
    fig = new_figure(len(panels) * width + 1.4 if side else width + 2.4, 4.8 if side else 3.6 * len(panels))
    axes = np.atleast_1d(fig.subplots(1, len(panels)) if side else fig.subplots(len(panels), 1))
    for ax, (frame, metric, ylabel, title, text) in zip(axes, panels, strict=True):
        if metric == "flops_per_sample":  # exact: no error bars
            frame = frame.drop(columns=["flops_per_sample_std"], errors="ignore")
        _pair_bars(ax, frame, pairs, metric, text, tilt)
        if metric != "test_mse":
            plain_axis(ax.yaxis)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
    handles, names = axes[0].get_legend_handles_labels()
    if side:
        fig.legend(handles, names, title="downsampling", loc="outside right upper")
    else:  # stacked: below the panels, clear of the title
        fig.legend(handles, names, title="downsampling", loc="outside lower center", ncols=2)
    fig.suptitle("Exercise 4: stride or pooling?")
    return fig


# ---- 5. throughput (the Pareto charts, 6., are in `aebench.report.pareto`) ----


def _speed_bars(ax: Any, part: pd.DataFrame, metric: str) -> None:
    """One device's configs as horizontal bars of `metric`, log past a 20x spread, error bars where seeds differ."""
    values = part[metric].to_numpy(dtype=float)
    err = std(part, metric)
    shown = values[np.isfinite(values) & (values > 0)]
    # fc and conv differ by 10-100x: on a linear axis the slow bars vanish, so go log past 20x.
    log = shown.size > 0 and shown.max() / shown.min() > 20
    base = 10 ** math.floor(math.log10(shown.min() / 2)) if log else 0.0
    # Error bars never reach below the axis' start (a std can exceed a noisy mean).
    xerr = None if err is None else np.vstack([np.clip(np.minimum(err, values - base * 1.05), 0, None), err])
    y = np.arange(len(part))
    bars = ax.barh(y, values - base, left=base, xerr=xerr, capsize=2, color=list(part["_color"]))
    ax.bar_label(bars, [si(v) if not math.isnan(v) else "" for v in values], padding=3, fontsize="x-small")
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left=base)
    plain_axis(ax.xaxis, log=log)
    ax.set_xlabel("samples/s (higher is better" + (", log scale)" if log else ")"))
    ax.margins(x=0.15)
    grid(ax, "x")


def plot_throughput(df: pd.DataFrame, colors: Colors | None = None) -> Figure:
    """Horizontal bars of training and inference samples/s per config, one row of panels per device.

    Args:
        df: one row per (config, device): `label`, `device_name`, the mean `train_samples_per_s` and
            `infer_samples_per_s` over that device's seeds and their `_std` (`aebench.report.build.by_device`). A config
            run on two devices has a bar on each; no bar mixes two machines' figures.
        colors: the report's colour per config label.
    """
    df = _need(df, "train_samples_per_s")
    if len(df) < 2:
        raise Skipped(
            "one config only, so nothing to compare its throughput with; draw it with aebench compare --archs fc,conv"
        )
    colors = colors_for(list(df["label"]), colors)
    devices = per_device(df.assign(_color=[colors[name] for name in df["label"]]))
    sizes = [len(part) for _, part in devices]
    fig = new_figure(12, 1.0 + 0.38 * sum(sizes) + 0.7 * len(devices))
    axes = fig.subplots(len(devices), 2, squeeze=False, height_ratios=[n + 1.5 for n in sizes])
    for row, (device, part) in zip(axes, devices, strict=True):
        rank = {name: k for k, name in enumerate(in_order(part["label"], colors))}
        part = part.iloc[np.argsort([rank[name] for name in part["label"]], kind="stable")]
        where = f" on {device}" if len(devices) > 1 else ""
        for ax, metric, title in zip(
            row,
            ("train_samples_per_s", "infer_samples_per_s"),
            (f"training{where}", f"inference{where or ' (test set, training batch size)'}"),
            strict=True,
        ):
            _speed_bars(ax, part, metric)
            ax.set_title(title, fontsize="medium")
            ax.set_yticks(np.arange(len(part)), list(part["label"]) if ax is row[0] else [])
            ax.invert_yaxis()  # the report's config order, top to bottom
    if len(devices) > 1:
        fig.suptitle("Throughput per device (each device's figures apart: they do not compare across machines)")
    else:
        fig.suptitle(f"Throughput{one_device([devices[0][0]])}")
    return fig
