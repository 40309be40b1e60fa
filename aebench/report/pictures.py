"""The report's pictures from saved checkpoints: reconstructions, latent space, interpolation, feature maps.

These answer the seed tutorial's Exercises 2 and 3 and its `visualize_reconstructions` /
`visualize_feature_maps` for every config at once. `Pictures` loads each config's checkpoint
(the lowest seed's) and the dataset's test split, runs the models on the CPU and hands plain
arrays to the `plot_*` functions, which, like those in `aebench.plots`, only draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from aebench import data as datamod
from aebench.errors import AebenchError
from aebench.models.base import Autoencoder
from aebench.report.plots import Skipped, _colors, new_figure
from aebench.train import checkpoint

NAMES = ("reconstructions", "latent_space", "latent_grid", "interpolation", "latent_arithmetic", "feature_maps")
MAX_ROWS = 8  # configs per picture: more rows than this no longer fit a screen
MAX_PANELS = 4  # configs per latent-space picture, each a panel of its own
GRID_STEPS = 15  # decoded images per side of the latent-plane grid
INTERP_STEPS = 9  # decoded images from z1 to z2, both ends included
MAX_MAPS, MAPS_PER_ROW = 16, 8  # the seed's visualize_feature_maps shows 16
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple(str(i) for i in range(10)),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),  # romanised: no CJK font needed
}
# Pairs and triples of classes whose blend shows something (a sneaker growing into a boot; z1 + z2 - z3:
# a sandal plus what makes a boot a boot rather than a sneaker).
INTERP_PAIRS = ((7, 9), (0, 1))
ARITHMETIC = ((5, 9, 7), (3, 2, 0))
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid)

Cell = tuple[np.ndarray, str]


@dataclass(frozen=True)
class TestSet:
    """A dataset's test split: uint8 images (N, C, H, W) and int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor  # an image (H, W) or (H, W, 3) and its colour map


# ---- drawing: arrays in, Figure out ----


def _rgb(image: np.ndarray, cmap: str) -> np.ndarray:
    """One cell as RGB in [0, 1]: grey images as they are, other maps min-max scaled through `cmap`."""
    from matplotlib import colormaps

    if image.ndim == 3:
        return np.clip(image, 0.0, 1.0)
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
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]], class_names: Sequence[str]
) -> Figure:
    """Test-set codes of 2-d latent models coloured by class; a dashed box marks the decoded grid's range.

    Args:
        panels: (config label, codes (N, 2), labels (N,), grid box (z1_lo, z1_hi, z2_lo, z2_hi)).
    """
    fig = new_figure(5.2 * len(panels) + 1.8, 5.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    colors = _colors(len(class_names))
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
    return fig


def plot_latent_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> Figure:
    """Images decoded from an even grid over the latent plane, placed where their codes lie.

    Args:
        panels: (config label, mosaic (steps*H, steps*W) with the highest z2 on top, z1 values, z2 values top
            to bottom). Drawn in pixels so every decoded image stays square; the ticks give the z values.
    """
    fig = new_figure(5.4 * len(panels) + 0.4, 6.0)
    fig.set_layout_engine("compressed")  # made for grids of fixed-aspect axes such as images
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, mosaic, z1, z2) in zip(axes, panels, strict=True):
        ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        cell_w, cell_h = mosaic.shape[1] / len(z1), mosaic.shape[0] / len(z2)
        ticks = range(0, len(z1), 3)
        ax.set_xticks([(i + 0.5) * cell_w for i in ticks], [f"{z1[i]:.3g}" for i in ticks])
        ax.set_yticks([(i + 0.5) * cell_h for i in ticks], [f"{z2[i]:.3g}" for i in ticks])
        ax.set_title(name)
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
    return fig


# ---- running the models ----


def _display(x: torch.Tensor, output: str) -> np.ndarray:
    """Model-range images (N, C, H, W) -> [0, 1] arrays (N, H, W) or (N, H, W, 3) for imshow."""
    x = (x + 1.0) / 2.0 if output == "tanh" else x
    arr = x.clamp(0.0, 1.0).detach().cpu().numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


def first_conv_maps(model: Autoencoder, x: torch.Tensor) -> np.ndarray:
    """The first conv layer's output for one image (C, H, W), after its activation where one follows."""
    layers = list(model.encoder.children()) if isinstance(model.encoder, nn.Sequential) else []
    index = next((i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)), None)
    with torch.no_grad():
        if index is not None:
            end = index + 2 if index + 1 < len(layers) and isinstance(layers[index + 1], _ACTIVATIONS) else index + 1
            return nn.Sequential(*layers[:end])(x)[0].numpy()
        conv = next(m for m in model.encoder.modules() if isinstance(m, nn.Conv2d))
        seen: list[torch.Tensor] = []
        handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            model.encode(x)
        finally:
            handle.remove()
        return seen[0][0].numpy()


def has_conv(model: Autoencoder) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.encoder.modules())


def spread(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """At most k rows, evenly spaced from best to worst test MSE, so both ends stay visible."""
    rows = rows.sort_values("test_mse", kind="stable")
    if len(rows) <= k or k < 2:
        return rows.iloc[: max(k, 0)] if k < 2 else rows
    picks = sorted({round(i * (len(rows) - 1) / (k - 1)) for i in range(k)})
    return rows.iloc[picks]


class Pictures:
    """Checkpoint-based figures for the configs of one report.

    Args:
        results: the results folder the `checkpoint` paths are relative to.
        configs: one row per config with `label`, `dataset`, `checkpoint`, `test_mse`, `latent_size`.
    """

    def __init__(self, results: Path, configs: pd.DataFrame, data_dir: str | Path | None = None) -> None:
        self.results = results
        self.configs = configs
        self.data_dir = data_dir
        self._dataset: TestSet | None = None
        self._rows: pd.DataFrame | None = None
        self._models: dict[str, Autoencoder] = {}
        self._broken: dict[str, str] = {}
        self._code_cache: dict[int, tuple[np.ndarray, tuple[float, ...]]] = {}

    # ---- shared inputs ----

    def _data(self) -> tuple[TestSet, pd.DataFrame]:
        """The most used dataset's test split and the configs trained on it with a checkpoint."""
        if self._dataset is not None and self._rows is not None:
            return self._dataset, self._rows
        rows = self.configs.dropna(subset=["checkpoint"])
        if rows.empty:
            raise Skipped("no selected run has a checkpoint")
        name = str(rows["dataset"].value_counts().index[0])
        # Only the test split: reading the training images would double the report's start-up time.
        folder = datamod.find(name, self.data_dir, splits=("test",))
        if folder is None:
            raise Skipped(f"the {name} test images are not on this machine (see `aebench datasets`)")
        try:
            split = datamod.read_split(folder, "test")
        except AebenchError as exc:
            raise Skipped(f"the {name} test images cannot be read ({exc})") from None
        self._dataset = TestSet(name, split.images, split.labels)
        self._rows = rows[rows["dataset"] == name]
        return self._dataset, self._rows

    def _model(self, row: pd.Series) -> Autoencoder | None:
        key = str(row["checkpoint"])
        if key not in self._models and key not in self._broken:
            try:
                self._models[key] = checkpoint.load(self.results / key)[1]
            except (AebenchError, OSError, KeyError, RuntimeError, ValueError) as exc:
                self._broken[key] = f"{row['label']}: checkpoint {key} unreadable ({type(exc).__name__})"
        return self._models.get(key)

    def _pick(
        self, rows: pd.DataFrame, k: int, keep: Callable[[Autoencoder], bool] = lambda m: True, why: str = ""
    ) -> tuple[list[tuple[pd.Series, Autoencoder]], str]:
        """Up to k (row, model) pairs spread over the MSE range, and a note on what was left out."""
        usable = [(r, m) for _, r in rows.iterrows() if (m := self._model(r)) is not None and keep(m)]
        if not usable:
            raise Skipped(why or "no checkpoint of the selected runs could be loaded")
        frame = pd.DataFrame([r for r, _ in usable]).assign(_i=range(len(usable)))
        chosen = [usable[int(i)] for i in spread(frame, k)["_i"]]
        notes = []
        if len(usable) > k:
            notes.append(f"{k} of {len(usable)} configs shown, spread from best to worst test MSE")
        if self.configs["dataset"].nunique() > 1:
            notes.append(f"{rows['dataset'].iloc[0]} runs only")
        notes += self._broken.values()
        return chosen, (" (" + "; ".join(notes) + ")") if notes else ""

    def _x(self, dataset: TestSet, index: Sequence[int], model: Autoencoder) -> torch.Tensor:
        return datamod.to_device(dataset.images[list(index)], torch.device("cpu"), model.output)

    def _first_of_classes(self, dataset: TestSet, classes: Sequence[int]) -> list[int]:
        labels = dataset.labels
        n = int(labels.max()) + 1
        return [int(torch.nonzero(labels == c % n)[0]) for c in classes]

    def _class_names(self, dataset: TestSet) -> tuple[str, ...]:
        n = int(dataset.labels.max()) + 1
        names = CLASS_NAMES.get(dataset.name, ())
        return names if len(names) == n else tuple(str(i) for i in range(n))

    # ---- the figures: each returns (Figure, caption) or raises Skipped ----

    def figure(self, name: str) -> tuple[Figure, str]:
        if name not in NAMES:
            raise KeyError(name)
        draw: Callable[[], tuple[Figure, str]] = getattr(self, name)
        return draw()

    def reconstructions(self) -> tuple[Figure, str]:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS)
        names = self._class_names(ds)
        index = self._first_of_classes(ds, range(min(10, len(names))))
        originals = ds.images[index].float().div(255.0)
        out = [("original", [(img, "gray") for img in _display(originals, "sigmoid")])]
        for row, model in picked:
            with torch.no_grad():
                recon = _display(model(self._x(ds, index, model)), model.output)
            out.append((f"{row['label']}\nMSE {row['test_mse']:.4f}", [(img, "gray") for img in recon]))
        fig = plot_image_rows(out, [names[i] for i in range(len(index))])
        return fig, (
            f"Reconstructions: the first test image of each class (top) and each config's reconstruction "
            f"of it below, best test MSE first{note}."
        )

    def _two_d(self) -> tuple[TestSet, list[tuple[pd.Series, Autoencoder]], str]:
        ds, rows = self._data()
        rows = rows[rows["latent_size"] == 2]
        if rows.empty:
            raise Skipped("no selected run has a 2-d latent; compare with --latent-dims 2 (seed Exercise 2)")
        picked, note = self._pick(rows, MAX_PANELS)
        return ds, picked, note

    def _codes(self, ds: TestSet, model: Autoencoder) -> tuple[np.ndarray, tuple[float, ...]]:
        """All test codes, and the 1st-99th percentile box a grid should cover (outliers would waste it)."""
        if id(model) in self._code_cache:
            return self._code_cache[id(model)]
        x = datamod.to_device(ds.images, torch.device("cpu"), model.output)
        with torch.no_grad():
            codes = torch.cat([model.encode(chunk).flatten(1) for chunk in x.split(1024)]).numpy()
        lo, hi = np.percentile(codes, [1, 99], axis=0)
        self._code_cache[id(model)] = codes, (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        return self._code_cache[id(model)]

    def latent_space(self) -> tuple[Figure, str]:
        ds, picked, note = self._two_d()
        labels = ds.labels.numpy()
        panels = []
        for row, model in picked:
            codes, box = self._codes(ds, model)
            panels.append((str(row["label"]), codes, labels, box))
        fig = plot_latent_space(panels, self._class_names(ds))
        return fig, (
            f"Latent space (Exercise 2): the codes of all {len(labels):,} test images of each 2-d latent "
            f"config, coloured by class; the dashed box is the range decoded in the latent grid{note}."
        )

    def latent_grid(self) -> tuple[Figure, str]:
        ds, picked, note = self._two_d()
        panels = []
        for row, model in picked:
            _, (x0, x1, y0, y1) = self._codes(ds, model)
            z1 = np.linspace(x0, x1, GRID_STEPS)
            z2 = np.linspace(y1, y0, GRID_STEPS)  # top row = highest z2, as on the scatter plot
            grid = torch.tensor([[a, b] for b in z2 for a in z1], dtype=torch.float32)
            with torch.no_grad():
                images = _display(model.decode(grid), model.output)
            h, w = images.shape[1:3]
            mosaic = images.reshape(GRID_STEPS, GRID_STEPS, h, w).transpose(0, 2, 1, 3).reshape(GRID_STEPS * h, -1)
            panels.append((str(row["label"]), mosaic, z1, z2))
        fig = plot_latent_grid(panels)
        return fig, (
            f"Latent grid (Exercise 2c): images decoded from a {GRID_STEPS}×{GRID_STEPS} grid over the "
            f"1st-99th percentile range of each 2-d latent config's test codes{note}."
        )

    def interpolation(self) -> tuple[Figure, str]:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS // len(INTERP_PAIRS))
        names = self._class_names(ds)
        ts = np.linspace(0.0, 1.0, INTERP_STEPS)
        out = []
        for row, model in picked:
            for a, b in INTERP_PAIRS:
                index = self._first_of_classes(ds, (a, b))
                x = self._x(ds, index, model)
                with torch.no_grad():
                    z = model.encode(x)
                    strip = torch.stack([(1 - t) * z[0] + t * z[1] for t in ts.tolist()])
                    images = _display(model.decode(strip), model.output)
                ends = _display(x, model.output)
                cells = [(ends[0], "gray"), *[(img, "gray") for img in images], (ends[1], "gray")]
                out.append((f"{row['label']}\n{names[a % len(names)]} → {names[b % len(names)]}", cells))
        titles = ["x₁", *[f"t={t:.2g}" for t in ts], "x₂"]
        fig = plot_image_rows(out, titles)
        return fig, (
            f"Interpolation (Exercise 3): decoded z = (1-t)·z₁ + t·z₂ between the codes of two test "
            f"images (originals at both ends), per config{note}."
        )

    def latent_arithmetic(self) -> tuple[Figure, str]:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS // len(ARITHMETIC))
        names = self._class_names(ds)
        out = []
        for row, model in picked:
            for triple in ARITHMETIC:
                index = self._first_of_classes(ds, triple)
                x = self._x(ds, index, model)
                with torch.no_grad():
                    z = model.encode(x)
                    decoded = _display(model.decode(torch.cat([z, (z[0] + z[1] - z[2])[None]])), model.output)
                originals = _display(x, model.output)
                a, b, c = (names[k % len(names)] for k in triple)
                cells = [*[(img, "gray") for img in originals], *[(img, "gray") for img in decoded]]
                out.append((f"{row['label']}\n{a} + {b} − {c}", cells))
        titles = ["x₁", "x₂", "x₃", "dec(z₁)", "dec(z₂)", "dec(z₃)", "dec(z₁+z₂−z₃)"]
        fig = plot_image_rows(out, titles)
        return fig, (
            f"Latent arithmetic (Exercise 2d): three test images, their reconstructions, and "
            f"z₁ + z₂ − z₃ decoded, per config{note}."
        )

    def feature_maps(self) -> tuple[Figure, str]:
        ds, rows = self._data()
        picked, note = self._pick(
            rows, MAX_PANELS, keep=has_conv, why="no selected run has a conv encoder; compare with --archs conv"
        )
        index = self._first_of_classes(ds, (9,))
        out = []
        for row, model in picked:
            x = self._x(ds, index, model)
            maps = first_conv_maps(model, x)[:MAX_MAPS]
            image = _display(x, model.output)[0]
            size = f"{maps.shape[1]}×{maps.shape[2]}"
            # Eight maps a row keeps each one big enough to see; the input heads the first row.
            for start in range(0, len(maps), MAPS_PER_ROW):
                part = maps[start : start + MAPS_PER_ROW]
                lead = (image, "gray") if start == 0 else (np.ones_like(image), "gray")
                name = f"{row['label']}\n" if start == 0 else ""
                channels = f"{size} maps, ch {start}-{start + len(part) - 1}"
                out.append((name + channels, [lead, *[(m, "viridis") for m in part]]))
        fig = plot_image_rows(out, ["input"])
        return fig, (
            f"Feature maps: the first conv layer's output channels (after its activation; yellow is "
            f"high, each map scaled on its own) for one test image, per conv config{note}."
        )
