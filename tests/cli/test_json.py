"""`--json` is strict JSON with the declared types: what a CI script parses with any JSON reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.cli.console import strict

runner = CliRunner()


def _no_constants(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_strict_gives_the_declared_types() -> None:
    row = {"latent_dim": 2.0, "batchnorm": 0.0, "dropout": 0.0, "test_mse": math.nan, "lr": 0.001, "hidden": None}
    assert strict(row) == {"latent_dim": 2, "batchnorm": 0, "dropout": 0.0, "test_mse": None, "lr": 0.001,
                           "hidden": None}  # fmt: skip
    assert type(strict(row)["latent_dim"]) is int and type(strict(row)["dropout"]) is float
    assert strict([Path("a"), math.inf]) == ["a", None]


def test_a_dry_run_plan_is_strict_json(tmp_path: Path) -> None:
    res = runner.invoke(app, ["compare", "--archs", "fc,conv", "--latent-dims", "2,16", "--dry-run", "--json",
                              "--results", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    cells = _no_constants(res.stdout)
    assert isinstance(cells, list) and {type(c["latent_dim"]) for c in cells} == {int}
    fc = [c for c in cells if c["arch"] == "fc"]
    assert all(c["downsample"] is None and c["batchnorm"] == 0 and type(c["batchnorm"]) is int for c in fc)


@pytest.mark.slow
def test_a_trained_run_and_its_report_are_strict_json(tmp_path: Path) -> None:
    results = tmp_path / "r"
    args = ["--arch", "fc", "--depth", "shallow", "--latent-dim", "8", "--epochs", "1", "--train-size", "600"]
    trained = runner.invoke(app, ["train", *args, "--device", "cpu", "--json", "--results", str(results)])
    assert trained.exit_code == 0, trained.output
    run = _no_constants(trained.stdout)
    assert isinstance(run, dict) and run["latent_dim"] == 8 and type(run["epochs_run"]) is int
    assert run["downsample"] is None and run["curve"][0]["val_loss"] > 0
    report = runner.invoke(app, ["report", "--results", str(results), "--out", str(tmp_path / "rep"), "--format", "md",
                                 "--only", "throughput", "--json"])  # fmt: skip
    assert report.exit_code == 0, report.output
    assert isinstance(_no_constants(report.stdout), dict)
