"""PCA beside a grid: at each code size the grid trains, once, and each run's test MSE as a ratio to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.config import GridSpec, RunConfig, model_spec
from aebench.grid.baselines import BASELINE, ratio_to_pca, with_baselines

runner = CliRunner()


def test_pca_is_added_once_at_each_code_size_below_the_images() -> None:
    grid = GridSpec(archs=("fc", "conv"), latent_dims=(2, 32), seeds=2).expand()
    seeds = [RunConfig(model=model_spec(a)) for a in ("seed-ae", "seed-conv")]  # codes of 20 and 3,136 numbers
    cells = with_baselines([*grid, *seeds])
    pca = [c for c in cells if c.model.arch == BASELINE]
    assert sorted(c.model.latent_dim for c in pca if c.model.latent_dim is not None) == [2, 20, 32]  # not 3,136
    assert cells[: len(grid) + 2] == [*grid, *seeds] and {c.seed for c in pca} == {0}
    assert with_baselines(cells) == cells  # PCA is not fitted twice, nor beside itself


def test_each_run_is_shown_against_pca_at_its_code_size() -> None:
    rows = [
        {"arch": "fc", "dataset": "mnist", "latent_size": 32, "test_mse": 0.03},
        {"arch": "fc", "dataset": "mnist", "latent_size": 8, "test_mse": 0.03},
        {"arch": BASELINE, "dataset": "mnist", "latent_size": 32, "test_mse": 0.015},
        {"arch": "fc", "dataset": "fashion-mnist", "latent_size": 32, "test_mse": 0.01},  # PCA on other data
    ]
    assert ratio_to_pca(rows) == [2.0, None, None, None]


@pytest.mark.slow
def test_compare_fits_pca_beside_the_grid_and_says_which_runs_are_worse(tmp_path: Path) -> None:
    args = ["compare", "--depths", "shallow,deep", "--latent-dims", "16", "--epochs", "1", "--train-size", "1000",
            "--device", "cpu", "--results", str(tmp_path)]  # fmt: skip
    plan = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert [c["arch"] for c in json.loads(plan.stdout)] == ["fc", "fc", "pca"]
    assert len(json.loads(runner.invoke(app, [*args, "--dry-run", "--json", "--no-baselines"]).stdout)) == 2
    res = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "×PCA" in text and "│ pca " in res.stdout
    # one epoch on 900 images: no autoencoder beats the optimal linear code yet, and the table says so
    assert "worse than PCA: under-trained or too constrained: fc shallow (" in text and "fc deep (" in text
