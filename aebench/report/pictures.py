"""The report's pictures of what trained models do: reconstructions, latent space, interpolation, feature maps.

These answer the seed tutorial's Exercises 2 and 3 and its `visualize_reconstructions` /
`visualize_feature_maps` for every config at once. This module only draws: each picture is a
pure function from plain [0, 1] arrays (one small record per picture, defined here) to a
matplotlib Figure and its caption, like the charts in `aebench.report.plots`. Loading the
checkpoints and running the models to get those arrays is the report's build step
(`aebench.report.arrays`), kept apart so that drawing needs no torch and can be tried on
made-up arrays, and so that the slow part (models on 10,000 test images) sits in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from aebench.report.style import new_figure, palette

NAMES = ("reconstructions", "latent_space", "latent_grid", "interpolation", "latent_arithmetic", "feature_maps")
MAPS_PER_ROW = 8  # eight feature maps a row keeps each one big enough to see
DATASET_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "kmnist": "KMNIST"}

Cell = tuple[np.ndarray, str]  # an image (H, W) or (H, W, 3) and its colour map
# Images are [0, 1] arrays (N, H, W), or (N, H, W, 3) for colour, as `aebench.train.display.to_images` makes them.


# ---- what each picture is drawn from ----


@dataclass(frozen=True)
class Reconstructions:
    """The first test image of each class (`class_names` are their column titles) and, per config,
    (label, test MSE, its reconstructions of them), best first."""

    class_names: Sequence[str]
    originals: np.ndarray
    rows: Sequence[tuple[str, float, np.ndarray]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


@dataclass(frozen=True)
class LatentSpace:
    """Per 2-d latent config: (label, test codes (N, 2), test labels (N,), grid box (z1_lo, z1_hi, z2_lo, z2_hi))."""

    class_names: Sequence[str]
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


@dataclass(frozen=True)
class LatentGrid:
    """Per 2-d latent config: (label, images decoded row by row from the top (rows*cols, H, W), z1 values,
    z2 values top to bottom)."""

    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


@dataclass(frozen=True)
class Interpolation:
    """Per config and class pair: (label, from class, to class, the two inputs (2, ...), the images decoded
    at each of `ts` (T, ...))."""

    ts: np.ndarray
    rows: Sequence[tuple[str, str, str, np.ndarray, np.ndarray]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


@dataclass(frozen=True)
class Arithmetic:
    """Per config and class triple: (label, the three class names, the three inputs (3, ...), decoded
    z1, z2, z3 and z1 + z2 - z3 (4, ...))."""

    rows: Sequence[tuple[str, tuple[str, str, str], np.ndarray, np.ndarray]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


@dataclass(frozen=True)
class FeatureMaps:
    """Per conv config: (label, the input image (H, W), its first conv layer's output channels (C, h, w))."""

    rows: Sequence[tuple[str, np.ndarray, np.ndarray]]
    note: str = ""
    dataset: str = ""  # its name in the store (fashion-mnist), for the title


# ---- drawing: arrays in, Figure out ----


def _rgb(image: np.ndarray, cmap: str) -> np.ndarray:
    """One cell as RGB in [0, 1]: grey images as they are, other maps min-max scaled through `cmap`."""
    from matplotlib import colormaps

    if image.ndim == 3:
        return np.asarray(np.clip(image, 0.0, 1.0))
    if cmap == "gray":
        return np.repeat(np.clip(image, 0.0, 1.0)[..., None], 3, axis=2)
    lo, hi = float(image.min()), float(image.max())
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.asarray(colormaps[cmap](scaled))[..., :3]


def mosaic(rows: Sequence[Sequence[Cell]], gap: int = 2) -> tuple[np.ndarray, int, int]:
    """All cells in one RGB canvas on white, each scaled up by a whole factor to the largest cell.

    One image on one Axes draws in a fraction of the time of an Axes per cell, and keeps
    every pixel square; returns the canvas and the slot height and width.
    """
    cells = [_rgb(img, cmap) for row in rows for img, cmap in row]
    sh, sw = max(c.shape[0] for c in cells), max(c.shape[1] for c in cells)
    n_cols = max(len(row) for row in rows)
    canvas = np.ones((len(rows) * (sh + gap) - gap, n_cols * (sw + gap) - gap, 3))
    for r, row in enumerate(rows):
        for c, (img, cmap) in enumerate(row):
            cell = _rgb(img, cmap)
            k = max(1, min(sh // cell.shape[0], sw // cell.shape[1]))
            cell = cell.repeat(k, axis=0).repeat(k, axis=1)
            y = r * (sh + gap) + (sh - cell.shape[0]) // 2
            x = c * (sw + gap) + (sw - cell.shape[1]) // 2
            canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return canvas, sh + gap, sw + gap


def plot_image_rows(
    rows: Sequence[tuple[str, Sequence[Cell]]], col_titles: Sequence[str] = (), title: str = "", cell: float = 0.8
) -> Figure:
    """A mosaic of small images, one labelled row per entry (the shape of every picture here)."""
    canvas, step_y, step_x = mosaic([cells for _, cells in rows])
    n_cols = max(len(cells) for _, cells in rows)
    label_width = 0.085 * max(len(line) for name, _ in rows for line in name.splitlines()) + 0.2
    fig = new_figure(label_width + cell * n_cols + 0.2, cell * len(rows) + (0.8 if title else 0.45))
    fig.set_layout_engine("compressed")  # one fixed-aspect image: constrained layout would clip its labels
    ax = fig.subplots()
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([(r + 0.5) * step_y - 1 for r in range(len(rows))], [name for name, _ in rows], fontsize="small")
    ax.set_xticks([(c + 0.5) * step_x - 1 for c in range(len(col_titles))], list(col_titles), fontsize="small")
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def plot_latent_space(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]],
    class_names: Sequence[str],
    title: str = "",
) -> Figure:
    """Test-set codes of 2-d latent models coloured by class; a dashed box marks the decoded grid's range.

    Args:
        panels: (config label, codes (N, 2), labels (N,), grid box (z1_lo, z1_hi, z2_lo, z2_hi)).
    """
    fig = new_figure(5.2 * len(panels) + 1.8, 5.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    colors = palette(len(class_names))
    for ax, (name, codes, labels, box) in zip(axes, panels, strict=True):
        for k, cname in enumerate(class_names):
            pts = codes[labels == k]
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=colors[k], label=cname, rasterized=True)
        x0, x1, y0, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linestyle="--", edgecolor="black"))
        ax.set_title(name)
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
        ax.grid(True, alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", markerscale=5, title="class", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def plot_latent_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """Images decoded from an even grid over the latent plane, placed where their codes lie.

    Args:
        panels: (config label, mosaic (steps*H, steps*W) with the highest z2 on top, z1 values, z2 values top
            to bottom). Every decoded image stays square; the axes are in z, with round ticks.
    """
    fig = new_figure(5.4 * len(panels) + 0.4, 6.4 if title else 6.0)
    fig.set_layout_engine("compressed")  # made for grids of fixed-aspect axes such as images
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, mosaic, z1, z2) in zip(axes, panels, strict=True):
        # Each decoded image spans one grid step around its z; the axes count in z, so ticks fall on round values.
        step1 = (z1[-1] - z1[0]) / (len(z1) - 1) if len(z1) > 1 and z1[-1] != z1[0] else 1.0
        step2 = (z2[0] - z2[-1]) / (len(z2) - 1) if len(z2) > 1 and z2[0] != z2[-1] else 1.0
        extent = (z1[0] - step1 / 2, z1[-1] + step1 / 2, z2[-1] - step2 / 2, z2[0] + step2 / 2)
        cells = (mosaic.shape[1] / len(z1)) / (mosaic.shape[0] / len(z2))  # a cell's width over its height
        ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", extent=extent,
                  aspect=step1 / step2 / cells)  # fmt: skip
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.set_title(name)
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
    if title:
        fig.suptitle(title)
    return fig


# ---- the pictures: a record in, (Figure, caption) out ----


def _gray(images: np.ndarray) -> list[Cell]:
    return [(img, "gray") for img in images]


def _images(dataset: str, many: bool = True) -> str:
    """'Fashion-MNIST test images' for a title; 'test images' when the record does not say."""
    name = DATASET_TITLES.get(dataset, dataset)
    if ":" in name:  # a user's own data, idx:/npz:/images:PATH: its file or folder name, not the whole path
        kind, _, path = name.partition(":")
        name = f"{kind}:{Path(path).name}"
    return f"{name} test image{'s' if many else ''}" if name else f"test image{'s' if many else ''}"


def reconstructions(a: Reconstructions) -> tuple[Figure, str]:
    rows = [("original", _gray(a.originals))]
    rows += [(f"{label}\nMSE {mse:.4f}", _gray(recon)) for label, mse, recon in a.rows]
    title = f"Reconstructions of {_images(a.dataset)}: originals on top, one config a row below"
    fig = plot_image_rows(rows, a.class_names, title)
    return fig, (
        f"Reconstructions: the first test image of each class (top) and each config's reconstruction "
        f"of it below, best test MSE first{a.note}."
    )


def latent_space(a: LatentSpace) -> tuple[Figure, str]:
    fig = plot_latent_space(a.panels, a.class_names, f"Codes of all {_images(a.dataset)} in each 2-d latent space")
    return fig, (
        f"Latent space (Exercise 2): the codes of all {len(a.panels[0][2]):,} test images of each 2-d latent "
        f"config, coloured by class; the dashed box is the range decoded in the latent grid{a.note}."
    )


def latent_grid(a: LatentGrid) -> tuple[Figure, str]:
    panels = []
    for name, images, z1, z2 in a.panels:
        h, w = images.shape[1:3]
        mosaic = images.reshape(len(z2), len(z1), h, w).transpose(0, 2, 1, 3).reshape(len(z2) * h, -1)
        panels.append((name, mosaic, z1, z2))
    trained = DATASET_TITLES.get(a.dataset, a.dataset)
    title = "Images decoded from an even grid over each 2-d latent plane" + (f" ({trained} models)" if trained else "")
    fig = plot_latent_grid(panels, title)
    _, _, z1, z2 = a.panels[0]
    return fig, (
        f"Latent grid (Exercise 2c): images decoded from a {len(z1)}×{len(z2)} grid over the "
        f"1st-99th percentile range of each 2-d latent config's test codes{a.note}."
    )


def interpolation(a: Interpolation) -> tuple[Figure, str]:
    rows = [
        (f"{label}\n{start} → {end}", [(ends[0], "gray"), *_gray(images), (ends[1], "gray")])
        for label, start, end, ends, images in a.rows
    ]
    title = f"Interpolation between two {_images(a.dataset)}: decoded (1−t)·z₁ + t·z₂"
    fig = plot_image_rows(rows, ["x₁", *[f"t={t:.2g}" for t in a.ts], "x₂"], title)
    return fig, (
        f"Interpolation (Exercise 3): decoded z = (1-t)·z₁ + t·z₂ between the codes of two test "
        f"images (originals at both ends), per config{a.note}."
    )


def latent_arithmetic(a: Arithmetic) -> tuple[Figure, str]:
    rows = [
        (f"{label}\n{x} + {y} − {z}", [*_gray(originals), *_gray(decoded)])
        for label, (x, y, z), originals, decoded in a.rows
    ]
    title = f"Latent arithmetic on {_images(a.dataset)}: z₁ + z₂ − z₃ decoded"
    fig = plot_image_rows(rows, ["x₁", "x₂", "x₃", "dec(z₁)", "dec(z₂)", "dec(z₃)", "dec(z₁+z₂−z₃)"], title)
    return fig, (
        f"Latent arithmetic (Exercise 2d): three test images, their reconstructions, and "
        f"z₁ + z₂ − z₃ decoded, per config{a.note}."
    )


def feature_maps(a: FeatureMaps) -> tuple[Figure, str]:
    rows: list[tuple[str, list[Cell]]] = []
    for label, image, maps in a.rows:
        size = f"{maps.shape[1]}×{maps.shape[2]}"
        # The input heads the first row of each config's maps, a blank the rows after it.
        for start in range(0, len(maps), MAPS_PER_ROW):
            part = maps[start : start + MAPS_PER_ROW]
            lead = (image, "gray") if start == 0 else (np.ones_like(image), "gray")
            name = f"{label}\n" if start == 0 else ""
            channels = f"{size} maps, ch {start}-{start + len(part) - 1}"
            rows.append((name + channels, [lead, *[(m, "viridis") for m in part]]))
    fig = plot_image_rows(rows, ["input"], f"First conv layer's feature maps of one {_images(a.dataset, False)}")
    scale = ScalarMappable(Normalize(0.0, 1.0), "viridis")
    bar = fig.colorbar(scale, ax=fig.axes[0], shrink=min(1.0, 3.0 / len(rows)), aspect=12, pad=0.02, ticks=[0, 1])
    bar.ax.set_yticklabels(["lowest", "highest"], fontsize="small")
    bar.set_label("activation, each map\nscaled to its own range", fontsize="small")
    return fig, (
        f"Feature maps: the first conv layer's output channels (after its activation; yellow is "
        f"high, each map scaled on its own) for one test image, per conv config{a.note}."
    )
