"""The report answers with its confidence, and ranks only runs trained alike (real runs, a real store)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aebench.cli.app import app

runner = CliRunner()


@pytest.mark.slow
def test_a_two_config_three_seed_grid_answers_with_ci_and_p_value(tmp_path: Path) -> None:
    results = tmp_path / "results"
    grid = runner.invoke(app, ["compare", "--archs", "fc", "--depths", "shallow", "--latent-dims", "2,32",
                               "--seeds", "3", "--epochs", "1", "--train-size", "1024", "--device", "cpu",
                               "--results", str(results)])  # fmt: skip
    assert grid.exit_code == 0, grid.output
    res = runner.invoke(app, ["report", "--results", str(results), "--only", "mse_vs_latent", "--json"])
    assert res.exit_code == 0, res.output
    answers = {a["metric"]: a for a in json.loads(res.stdout)["answers"]}
    mse = answers["test_mse"]
    assert mse["best"] == "fc L32" and mse["runner_up"] == "fc L2"  # a 32-d code reconstructs better than a 2-d one
    assert mse["ci95"] > 0 and 0 <= mse["p_value"] <= 1 and mse["mean"] > 0
    # one family: the report's questions and its findings, Holm-adjusted together; the raw p stays beside
    assert mse["p_adjusted"] >= mse["p_value"] and mse["comparisons"] >= 2
    assert mse["settled"] == (mse["p_adjusted"] < 0.05)
    [latent] = [f for f in json.loads(res.stdout)["findings"] if f["finding"].startswith("Latent dim")]
    assert latent["answer"]["comparisons"] == mse["comparisons"] and latent["answer"]["p_value"] is not None
    (folder,) = (Path(line) for line in json.loads(res.stdout)["files"] if line.endswith("report.md"))
    md = folder.read_text()
    assert "95% CI" in md and "p (Welch)" in md and "p (Holm)" in md


@pytest.mark.slow
def test_a_small_training_set_is_a_column_and_not_ranked_with_full_runs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    common = ["--archs", "seed-ae", "--epochs", "1", "--device", "cpu", "--results", str(results)]
    assert runner.invoke(app, ["compare", *common, "--seeds", "2"]).exit_code == 0
    assert runner.invoke(app, ["compare", *common, "--train-size", "2000"]).exit_code == 0
    out = tmp_path / "report"
    res = runner.invoke(app, ["report", "--results", str(results), "--out", str(out), "--only", "throughput", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert "not ranked" in summary["not_ranked"] and "n=2000" in summary["not_ranked"]
    md = (out / "report.md").read_text()
    table = md[md.index("## Results by config") :]
    assert "| train size |" in table  # the setting that varies is a column
    small = next(line for line in table.splitlines() if line.startswith("| seed-ae | n=2000 |"))
    assert "**" not in small  # 2,000 images train faster per epoch: not the "best" epoch time, not best at all
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["train_size"].fillna(0)) == {0, 2000}
