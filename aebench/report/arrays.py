"""The report's build step for its pictures: checkpoints loaded, models run, numpy arrays out.

`PictureArrays` picks, for each picture, the configs to show (the lowest seed's checkpoint of
each, spread over the test-MSE range), loads the most used dataset's test split, runs the models
on the CPU and hands the results to `aebench.report.pictures` as plain [0, 1] arrays. It is kept
apart from the drawing so that only this module touches torch and checkpoints, and so that every
picture of a report shares one loaded model per checkpoint and one pass over the test codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aebench import data as datamod
from aebench.errors import AebenchError
from aebench.models.base import Autoencoder
from aebench.report import pictures
from aebench.report.plots import Skipped
from aebench.splits import unit_float
from aebench.train import checkpoint
from aebench.train.display import model_input, reconstruct, to_images
from aebench.train.loop import EVAL_BATCH

MAX_ROWS = 8  # configs per picture: more rows than this no longer fit a screen
MAX_PANELS = 4  # configs per latent-space picture, each a panel of its own
GRID_STEPS = 15  # decoded images per side of the latent-plane grid
INTERP_STEPS = 9  # decoded images from z1 to z2, both ends included
MAX_MAPS = 16  # the seed's visualize_feature_maps shows 16
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


@dataclass(frozen=True)
class TestSet:
    """A dataset's test split: uint8 images (N, C, H, W) and int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor


# ---- one model ----


def first_conv(model: Autoencoder) -> nn.Conv2d | None:
    """The encoder's first 2-d convolution, whose output channels are the feature maps; None for fc encoders."""
    return next((m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)), None)


def has_feature_maps(model: Autoencoder) -> bool:
    return first_conv(model) is not None


@torch.no_grad()
def first_conv_maps(model: Autoencoder, x: torch.Tensor) -> np.ndarray:
    """The first conv layer's output for one image (C, H, W), after its activation where one follows."""
    layers = list(model.encoder.children()) if isinstance(model.encoder, nn.Sequential) else []
    index = next((i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)), None)
    if index is not None:
        end = index + 2 if index + 1 < len(layers) and isinstance(layers[index + 1], _ACTIVATIONS) else index + 1
        maps: torch.Tensor = nn.Sequential(*layers[:end])(x)
        return maps[0].numpy()
    conv = first_conv(model)
    if conv is None:
        raise ValueError("the model's encoder has no Conv2d")
    seen: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        model.encode(x)
    finally:
        handle.remove()
    return seen[0][0].numpy()


@torch.no_grad()
def decoded(model: Autoencoder, z: torch.Tensor) -> np.ndarray:
    """Codes (N, ...) decoded, as [0, 1] images."""
    return to_images(model.decode(z), model.output)


def spread(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """At most k rows, evenly spaced from best to worst test MSE, so both ends stay visible."""
    rows = rows.sort_values("test_mse", kind="stable")
    if len(rows) <= k or k < 2:
        return rows.iloc[: max(k, 0)] if k < 2 else rows
    picks = sorted({round(i * (len(rows) - 1) / (k - 1)) for i in range(k)})
    return rows.iloc[picks]


# ---- the configs of one report ----


class PictureArrays:
    """The arrays each picture of one report is drawn from; each method returns a `pictures` record or
    raises Skipped with the reason.

    Args:
        results: the results folder the `checkpoint` paths are relative to.
        configs: one row per config with `label`, `dataset`, `checkpoint`, `test_mse`, `latent_size`.
        data_dir: where to look for the test images first (see `aebench.data.search_roots`).
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
            raise Skipped(
                "no selected run has a checkpoint under its results folder's runs/; draw it with aebench report "
                "--results <the folder the runs were trained in>"
            )
        name = str(rows["dataset"].value_counts().index[0])
        try:
            split = datamod.test_split(name, self.data_dir)
        except AebenchError as exc:
            raise Skipped(
                f"the {name} test images cannot be read ({exc}); draw it with aebench report --data-dir <a folder "
                "with intact copies>"
            ) from None
        if split is None:
            raise Skipped(
                f"the {name} test images are not on this machine; draw it with aebench report --data-dir <their "
                "folder> (aebench datasets shows where aebench looks)"
            )
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
        loaded = [(r, m) for _, r in rows.iterrows() if (m := self._model(r)) is not None]
        usable = [(r, m) for r, m in loaded if keep(m)]
        if not usable:  # say the first thing that stopped it: no checkpoint loaded, or none of the right kind
            raise Skipped(why if loaded and why else "no checkpoint of the selected runs could be loaded")
        frame = pd.DataFrame([r for r, _ in usable]).assign(_i=range(len(usable)))
        chosen = [usable[int(i)] for i in spread(frame, k)["_i"]]
        notes = []
        if len(usable) > k:
            notes.append(f"{k} of {len(usable)} configs shown, spread from best to worst test MSE")
        if self.configs["dataset"].nunique() > 1:
            notes.append(f"{rows['dataset'].iloc[0]} runs only")
        notes += self._broken.values()
        return chosen, (" (" + "; ".join(notes) + ")") if notes else ""

    def _first_of_classes(self, dataset: TestSet, classes: Sequence[int]) -> list[int]:
        labels = dataset.labels
        n = int(labels.max()) + 1
        return [int(torch.nonzero(labels == c % n)[0]) for c in classes]

    def _class_names(self, dataset: TestSet) -> tuple[str, ...]:
        n = int(dataset.labels.max()) + 1
        names = CLASS_NAMES.get(dataset.name, ())
        return names if len(names) == n else tuple(str(i) for i in range(n))

    def _two_d(self) -> tuple[TestSet, list[tuple[pd.Series, Autoencoder]], str]:
        ds, rows = self._data()
        rows = rows[rows["latent_size"] == 2]
        if rows.empty:
            raise Skipped(
                "no selected run has a 2-d latent (seed Exercise 2); draw it with aebench compare --latent-dims 2"
            )
        picked, note = self._pick(rows, MAX_PANELS)
        return ds, picked, note

    @torch.no_grad()
    def _codes(self, ds: TestSet, model: Autoencoder) -> tuple[np.ndarray, tuple[float, ...]]:
        """All test codes, and the 1st-99th percentile box a grid should cover (outliers would waste it)."""
        if id(model) not in self._code_cache:
            x = model_input(ds.images, model.output)
            codes = torch.cat([model.encode(chunk).flatten(1) for chunk in x.split(EVAL_BATCH)]).numpy()
            lo, hi = np.percentile(codes, [1, 99], axis=0)
            self._code_cache[id(model)] = codes, (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        return self._code_cache[id(model)]

    # ---- the pictures' arrays ----

    def reconstructions(self) -> pictures.Reconstructions:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS)
        names = self._class_names(ds)
        index = self._first_of_classes(ds, range(min(10, len(names))))
        originals = to_images(unit_float(ds.images[index]), "sigmoid")
        recons = [(str(row["label"]), float(row["test_mse"]), reconstruct(model, ds.images[index])[1])
                  for row, model in picked]  # fmt: skip
        return pictures.Reconstructions([names[i] for i in range(len(index))], originals, recons, note, ds.name)

    def latent_space(self) -> pictures.LatentSpace:
        ds, picked, note = self._two_d()
        labels = ds.labels.numpy()
        panels = []
        for row, model in picked:
            codes, box = self._codes(ds, model)
            panels.append((str(row["label"]), codes, labels, box))
        return pictures.LatentSpace(self._class_names(ds), panels, note, ds.name)

    def latent_grid(self) -> pictures.LatentGrid:
        ds, picked, note = self._two_d()
        panels = []
        for row, model in picked:
            _, (x0, x1, y0, y1) = self._codes(ds, model)
            z1 = np.linspace(x0, x1, GRID_STEPS)
            z2 = np.linspace(y1, y0, GRID_STEPS)  # top row = highest z2, as on the scatter plot
            grid = torch.tensor([[a, b] for b in z2 for a in z1], dtype=torch.float32)
            panels.append((str(row["label"]), decoded(model, grid), z1, z2))
        return pictures.LatentGrid(panels, note, ds.name)

    def interpolation(self) -> pictures.Interpolation:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS // len(INTERP_PAIRS))
        names = self._class_names(ds)
        ts = np.linspace(0.0, 1.0, INTERP_STEPS)
        out = []
        for row, model in picked:
            for a, b in INTERP_PAIRS:
                x = model_input(ds.images[self._first_of_classes(ds, (a, b))], model.output)
                with torch.no_grad():
                    z = model.encode(x)
                strip = decoded(model, torch.stack([(1 - t) * z[0] + t * z[1] for t in ts.tolist()]))
                ends = to_images(x, model.output)
                out.append((str(row["label"]), names[a % len(names)], names[b % len(names)], ends, strip))
        return pictures.Interpolation(ts, out, note, ds.name)

    def latent_arithmetic(self) -> pictures.Arithmetic:
        ds, rows = self._data()
        picked, note = self._pick(rows, MAX_ROWS // len(ARITHMETIC))
        names = self._class_names(ds)
        out = []
        for row, model in picked:
            for first, second, third in ARITHMETIC:
                x = model_input(ds.images[self._first_of_classes(ds, (first, second, third))], model.output)
                with torch.no_grad():
                    z = model.encode(x)
                images = decoded(model, torch.cat([z, (z[0] + z[1] - z[2])[None]]))
                classes = (names[first % len(names)], names[second % len(names)], names[third % len(names)])
                out.append((str(row["label"]), classes, to_images(x, model.output), images))
        return pictures.Arithmetic(out, note, ds.name)

    def feature_maps(self) -> pictures.FeatureMaps:
        ds, rows = self._data()
        why = "no selected run has a conv encoder; compare with --archs conv"
        picked, note = self._pick(rows, MAX_PANELS, keep=has_feature_maps, why=why)
        index = self._first_of_classes(ds, (9,))
        out = []
        for row, model in picked:
            x = model_input(ds.images[index], model.output)
            out.append((str(row["label"]), to_images(x, model.output)[0], first_conv_maps(model, x)[:MAX_MAPS]))
        return pictures.FeatureMaps(out, note, ds.name)
