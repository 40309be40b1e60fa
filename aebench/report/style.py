"""How the report's figures look: a Figure without pyplot, one colour per config, plain tick labels.

Shared by the charts (`aebench.report.plots`, `aebench.report.pareto`) and the pictures, so that a
config has one colour in every figure and every axis reads the same. The colour map is built once
per report from every config's label, in the configs' sorted order (`config_colors`), and handed to
each chart; a chart drawn on its own derives the same map from the labels it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation

from aebench.report.tables import si

Colors = Mapping[str, Any]  # config label -> matplotlib colour


def new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas: no pyplot, no backend selection, safe in any thread."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def palette(n: int) -> list[Any]:
    """n different colours, those told apart most easily first: tab10; past ten, tab20's dark shades before its
    light ones, then tab20b's and tab20c's (60 in all); past sixty, evenly spaced hues. A study of 44 configs
    must not draw two of them alike."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    tab20 = colormaps["tab20"]
    tables = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
    tables += [colormaps[name](i) for name in ("tab20b", "tab20c") for i in range(20)]
    extra = max(0, n - len(tables))
    hues = [colormaps["hsv"](i / extra) for i in range(extra)]
    return [*tables, *hues][:n]


def config_colors(labels: Iterable[str]) -> dict[str, Any]:
    """One colour per config label, in the order given (the report's sorted configs); repeats are dropped."""
    names = list(dict.fromkeys(str(label) for label in labels))
    return dict(zip(names, palette(len(names)), strict=True))


def colors_for(names: Sequence[str], colors: Colors | None) -> dict[str, Any]:
    """`names`' colours from the report's map; with no map, a map of `names` in their order. A name the map
    lacks gets a colour after the map's own, so it never takes another config's."""
    if colors is None:
        return config_colors(names)
    extra = [n for n in dict.fromkeys(names) if n not in colors]
    more = palette(len(colors) + len(extra))[len(colors) :]
    return {**dict(colors), **dict(zip(extra, more, strict=True))}


def in_order(names: Iterable[str], colors: Colors) -> list[str]:
    """`names` once each, in the colour map's order (so every legend lists configs alike), unknown ones last."""
    rank = {name: i for i, name in enumerate(colors)}
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: (rank.get(n, len(rank)), unique.index(n)))


def series_colors(labels: Sequence[str], series: Sequence[str], colors: Colors | None) -> dict[str, Any]:
    """A colour per series (configs that differ in one axis, such as latent dim): that of its first config
    in the map's order, so a series is drawn in the colour of one of its configs and no two series share one."""
    colors = colors_for(labels, colors)
    of = dict(zip(labels, series, strict=True))
    first: dict[str, Any] = {}
    for label in in_order(labels, colors):
        first.setdefault(of[label], colors[label])
    return first


def std(df: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Error bars (the 95% CI of the mean over seeds, as the tables show) where some config has two or more
    seeds; None (no bars) otherwise."""
    col = f"{metric}_ci95" if f"{metric}_ci95" in df.columns else f"{metric}_std"
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


def footnote(fig: Figure, text: str) -> None:
    if text:
        fig.supxlabel(text, fontsize="small", color="#555555")


def grid(ax: Axes, axis: str = "both") -> None:
    ax.grid(True, axis=axis, alpha=0.3)  # type: ignore[arg-type]
    ax.set_axisbelow(True)


def one_device(devices: Iterable[str]) -> str:
    """' on NVIDIA H200' for a title when every figure was measured on one device, '' otherwise."""
    names = {str(d) for d in devices if d}
    return f" on {names.pop()}" if len(names) == 1 else ""


def per_device(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each device (`device_name`), sorted by name: speeds only compare on one machine."""
    names = df["device_name"].fillna("") if "device_name" in df.columns else pd.Series("", index=df.index)
    return [(str(name) or "an unrecorded device", part) for name, part in df.groupby(names, sort=True)]
