"""The report's Pareto charts: test MSE against parameters or FLOPs, every config a numbered point.

Names written beside the points overlap as soon as two configs cost about the same (pool and stride
share a parameter count), so each point carries its number instead, set where it covers no other
number or point, and a legend beside the axes names the configs by number, in the report's order
and colours: a config has the same number and colour in both charts. The y axis (log) is fitted to
the front and the points near it; a config far worse than the whole front sits on the top edge as a
triangle, its value in the legend, instead of squashing the rest into the bottom of the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from aebench.report.plots import Skipped, _need
from aebench.report.style import Colors, colors_for, grid, in_order, new_figure, plain_axis, std
from aebench.report.tables import no_bottleneck, pareto_front, si

PARETO_COLOR = "#d62728"
MARKERS = "osDvPXph*<>"  # no "^": it marks a config off the top
OUTLIER_FACTOR = 2.0  # a config more than this many times the front's worst test MSE goes on the top edge
# Where a number may go around its point, in points from the point: nearest first, then further out.
_RINGS = (10.0, 16.0, 24.0)
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))
_DIGIT_PT, _TEXT_H_PT, _POINT_PT = 5.4, 9.0, 7.0  # a digit's width, a number's height, a point's half width
# (with the ring round a front point)


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """The area two boxes (x0, y0, x1, y1) share."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_numbers(
    points: np.ndarray, texts: Sequence[str], bounds: Sequence[float], lines: Sequence[Sequence[float]] = ()
) -> list[tuple[float, float]]:
    """An offset (in points) for each text from its point, so that no text covers another text, a point or one of
    the axis-aligned `lines` (x0, y0, x1, y1) and each stays inside `bounds` (x0, y0, x1, y1), all in points; where
    no spot is free, the least covered.

    Greedy, in the given order (put the most important first): enough for a few dozen numbers of one to
    three digits, and dependency-free.
    """
    boxes = [(x - _POINT_PT, y - _POINT_PT, x + _POINT_PT, y + _POINT_PT) for x, y in points]
    boxes += [(min(x0, x1) - 1, min(y0, y1) - 1, max(x0, x1) + 1, max(y0, y1) + 1) for x0, y0, x1, y1 in lines]
    placed: list[tuple[float, float, float, float]] = []
    offsets = []
    for (x, y), text in zip(points, texts, strict=True):
        half_w, half_h = (_DIGIT_PT * len(text) + 2) / 2, _TEXT_H_PT / 2
        best: tuple[float, tuple[float, float]] | None = None
        for ring in _RINGS:
            for dx, dy in _DIRECTIONS:
                # The text's near edge `ring` from the point, whatever its width; diagonals a little closer.
                ox = dx * (ring / (1.4 if dy else 1) + half_w)
                oy = dy * (ring / (1.4 if dx else 1) + half_h)
                box = (x + ox - half_w, y + oy - half_h, x + ox + half_w, y + oy + half_h)
                cost = sum(_overlap(box, b) for b in (*boxes, *placed))
                outside = max(bounds[0] - box[0], 0) + max(box[2] - bounds[2], 0)
                outside += max(bounds[1] - box[1], 0) + max(box[3] - bounds[3], 0)
                cost += 100 * outside
                if best is None or cost < best[0]:
                    best = (cost, (ox, oy))
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        ox, oy = best[1]
        placed.append((x + ox - half_w, y + oy - half_h, x + ox + half_w, y + oy + half_h))
        offsets.append((ox, oy))
    return offsets


def log_ticks(bottom: float, top: float, count: int = 9) -> list[float]:
    """Round values (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) between bottom and top, about `count` of
    them evenly spread on a log axis."""
    lo, hi = math.floor(math.log10(bottom)), math.ceil(math.log10(top))
    values = [m * 10.0**k for k in range(lo, hi + 1) for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)]
    values = [v for v in values if bottom <= v <= top]
    gap = math.log10(top / bottom) / (count + 1)
    kept: list[float] = []
    for v in values:
        if not kept or math.log10(v / kept[-1]) >= gap:
            kept.append(v)
    return kept


def _y_limits(ax: Axes, df: pd.DataFrame, front: pd.DataFrame) -> tuple[float, pd.Index]:
    """Fit the (log) y axis to the front and the configs within OUTLIER_FACTOR of its worst; returns the y at
    which the others are drawn (on the top edge) and their index."""
    limit = OUTLIER_FACTOR * float(front["test_mse"].max())
    far = df.index[df["test_mse"] > limit]
    near = df.drop(index=far)
    err = std(near, "test_mse")
    spread = np.zeros(len(near)) if err is None else err
    lo = float(np.nanmin(near["test_mse"] - spread))
    hi = float(np.nanmax(near["test_mse"] + spread))
    lo = lo if lo > 0 else float(near["test_mse"].min()) / 1.5
    span = max(hi / lo, 1.5)  # log-scale margins: a share of the decades shown
    bottom, top = lo / span**0.08, hi * span ** (0.2 if len(far) else 0.12)
    ax.set_ylim(bottom, top)
    if top / bottom < 30:  # within a decade or so a log axis labels one or two ticks: put round values on it
        ax.yaxis.set_major_locator(FixedLocator(log_ticks(bottom, top)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    else:
        plain_axis(ax.yaxis, log=True, fmt=lambda v: f"{v:.3g}")
    return top / (top / bottom) ** 0.03, far


def plot_pareto(df: pd.DataFrame, x: str = "params", colors: Colors | None = None) -> Figure:
    """Test MSE against parameters (or FLOPs) for every config, numbered, the Pareto front drawn and in red."""
    what = {"params": "parameters", "flops_per_sample": "forward FLOPs per image"}[x]
    df = _need(df, x, "test_mse")
    if df[x].nunique() < 2:
        raise Skipped(
            f"every selected config has the same {what} ({si(df[x].iloc[0])}); draw it with aebench compare "
            "--archs fc,conv --latent-dims 2,16,32"
        )
    colors = colors_for(list(df["label"]), colors)
    rank = {name: k for k, name in enumerate(in_order(df["label"], colors))}
    df = df.iloc[np.argsort([rank[name] for name in df["label"]], kind="stable")].reset_index(drop=True)
    front = pareto_front(df.drop(index=sorted(no_bottleneck(df))), x)  # copying the input is no trade-off
    on_front = set(front.index)
    fig = new_figure(12, 5.8)
    ax = fig.subplots()
    ax.set_yscale("log")
    edge, far = _y_limits(ax, df, front)
    archs = list(dict.fromkeys(df["arch"]))
    markers = dict(zip(archs, MARKERS, strict=False))
    ys = df["test_mse"].where(~df.index.isin(far), edge)
    err = std(df, "test_mse")
    for i, row in df.iterrows():
        out = i in far
        ax.errorbar(
            row[x],
            ys[i],
            yerr=None if out or err is None else err[i],
            fmt="^" if out else markers.get(row["arch"], "o"),
            color=colors[row["label"]],
            markeredgecolor="black" if out else colors[row["label"]],
            capsize=3,
            markersize=8 if out else 7,
            alpha=0.9,
            clip_on=False,
        )
    ax.step(front[x], front["test_mse"], where="post", color=PARETO_COLOR, linestyle="--", linewidth=1.3)
    ax.scatter(front[x], front["test_mse"], s=170, facecolors="none", edgecolors=PARETO_COLOR, linewidths=1.5)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    plain_axis(ax.xaxis, log=True)
    ax.set_xlabel(f"{what} (log scale)")
    ax.set_ylabel("test MSE per pixel (lower is better, log scale)")
    ax.set_title(f"Test MSE against {what} (each config numbered, the Pareto front in red)")
    grid(ax)
    _legend(fig, df, x, front, far, colors, markers)
    _numbers(fig, ax, df, x, ys, on_front)
    return fig


def _legend(
    fig: Figure, df: pd.DataFrame, x: str, front: pd.DataFrame, far: pd.Index, colors: Colors, markers: dict[str, str]
) -> None:
    """The configs by number, front ones in red, those drawn on the top edge with their test MSE."""
    handles: list[Any] = [
        Line2D([], [], color=PARETO_COLOR, linestyle="--", marker="o", markerfacecolor="none", markersize=10)
    ]
    names = [f"Pareto front ({len(front)}): no config is both {'smaller' if x == 'params' else 'cheaper'} and better"]
    copies = no_bottleneck(df)
    for i, row in df.iterrows():
        out = i in far
        marker = "^" if out else markers.get(row["arch"], "o")
        handles.append(Line2D([], [], color=colors[row["label"]], marker=marker, linestyle="none", markersize=7))
        note = f"  (MSE {row['test_mse']:.3g}, off the top)" if out else ""
        note += "  (no bottleneck: not on the front)" if i in copies else ""
        names.append(f"{i + 1}  {row['label']}{note}")
    columns = 1 if len(names) <= 26 else 2
    legend = fig.legend(handles, names, loc="outside right upper", fontsize="small", ncols=columns, title="config")
    for i, text in enumerate(legend.get_texts()):
        if i == 0 or (i - 1) in front.index:
            text.set_color(PARETO_COLOR)
            text.set_fontweight("bold" if i else "normal")


def _numbers(fig: Figure, ax: Axes, df: pd.DataFrame, x: str, ys: pd.Series, on_front: set[Any]) -> None:
    """Each config's number beside its point, front ones first and in red; placed once the layout is fixed."""
    fig.draw_without_rendering()  # the constrained layout decides where the axes go
    to_pt = 72.0 / fig.dpi
    order = sorted(df.index, key=lambda i: (i not in on_front, i))
    points = ax.transData.transform(np.column_stack([df[x].to_numpy(float), ys.to_numpy(float)])) * to_pt
    bbox = ax.get_window_extent()
    bounds = (bbox.x0 * to_pt, bbox.y0 * to_pt, bbox.x1 * to_pt, bbox.y1 * to_pt)
    texts = [str(i + 1) for i in order]
    # The front's staircase: across from each front point to the next one's x, then down to it.
    stairs = points[sorted(on_front, key=lambda i: df.loc[i, x])]
    lines = [(a[0], a[1], b[0], a[1]) for a, b in zip(stairs, stairs[1:], strict=False)]
    lines += [(b[0], a[1], b[0], b[1]) for a, b in zip(stairs, stairs[1:], strict=False)]
    for i, (ox, oy) in zip(order, place_numbers(points[order], texts, bounds, lines), strict=True):
        front = i in on_front
        note = ax.annotate(
            str(i + 1),
            (df.loc[i, x], ys[i]),
            xytext=(ox, oy),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize="small",
            color=PARETO_COLOR if front else "#333333",
            fontweight="bold" if front else "normal",
            annotation_clip=False,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},  # over the front's line
        )
        note.set_in_layout(False)  # placed for this layout: it must not move the axes
