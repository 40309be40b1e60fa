"""The baselines a grid is judged against: PCA at every code size the grid trains, and each run's ratio to it.

A trained autoencoder that reconstructs worse than PCA at the same code size (the optimal linear code, fitted
in seconds) is under-trained or too constrained, whatever it ranks among its peers; so `compare` fits PCA
beside the grid unless told not to, and the terminal and the report show every run against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aebench import data as datamod
from aebench.columns import missing
from aebench.config import RunConfig, model_spec
from aebench.models.registry import create_model

BASELINE = "pca"
WORSE = "worse than PCA: under-trained or too constrained"


def code_size(config: RunConfig) -> int:
    """The number of values in one image's code, from the model built for the dataset's image shape."""
    spec = config.model
    model = create_model(spec.arch, datamod.image_shape(config.dataset), **spec.builder_options())
    return model.latent_size


def baseline_for(config: RunConfig, latent: int) -> RunConfig:
    """PCA at `latent` on `config`'s data (dataset, training images, validation holdout) and budget (its epochs,
    which PCA does not use but its label shows beside the grid's); every other setting at its default, so one fit
    serves every cell of that code size, whatever their learning rates, losses or seeds."""
    return replace(
        RunConfig(model=model_spec(BASELINE, latent_dim=latent)), dataset=config.dataset, epochs=config.epochs,
        train_size=config.train_size, val_fraction=config.val_fraction, seed=0,
    )  # fmt: skip


def with_baselines(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """`configs` and, after them, PCA at each code size they train (smaller than the image: PCA has no more
    components than pixels, and a code as large as the image is no bottleneck), each once."""
    out = {c.run_id: c for c in configs}
    for config in configs:
        if config.model.arch == BASELINE:
            continue
        latent = code_size(config)
        if latent < math.prod(datamod.image_shape(config.dataset)):
            pca = baseline_for(config, latent)
            out.setdefault(pca.run_id, pca)
    return list(out.values())


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    def text(name: str) -> str:
        value = row.get(name)
        if name == "val_fraction" and missing(value):
            return "0"  # runs stored before the holdout existed trained on every training image
        return "" if missing(value) else f"{float(value):g}" if isinstance(value, float) else str(value)

    return text("dataset"), text("train_size"), text("val_fraction"), text("latent_size")


def pca_mse(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], float]:
    """PCA's test MSE by (dataset, training images, holdout, code size), from the done PCA rows among `rows`."""
    return {
        _key(r): float(r["test_mse"]) for r in rows
        if r.get("arch") == BASELINE and not missing(r.get("test_mse"))
    }  # fmt: skip


def ratio_to_pca(rows: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Each row's test MSE over PCA's at its code size on the same data (None where PCA was not fitted, or for
    PCA itself); above 1 means worse than the optimal linear code."""
    baseline = pca_mse(rows)
    out: list[float | None] = []
    for r in rows:
        pca = baseline.get(_key(r))
        mse = r.get("test_mse")
        fine = r.get("arch") != BASELINE and pca is not None and pca > 0 and mse is not None and not missing(mse)
        out.append(float(mse) / pca if fine and pca is not None and mse is not None else None)
    return out
