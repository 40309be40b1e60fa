"""Quality regression checks: a faithful rerun of one baseline config passes, the same run 20% worse fails."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.grid.store import DB_NAME
from aebench.report.baseline import FLOOR, against_baseline, regressions

runner = CliRunner()
CELL = ["--archs", "fc", "--depths", "shallow", "--latent-dims", "32", "--epochs", "1", "--train-size", "1024",
        "--device", "cpu", "--no-baselines"]  # fmt: skip


def test_a_single_rerun_is_judged_by_the_baselines_spread_not_its_mean() -> None:
    base = pd.DataFrame({"arch": ["fc"] * 3, "seed": [0, 1, 2], "test_mse": [0.010, 0.011, 0.012], "status": "done"})
    # n = 3: mean 0.011, s 0.001; one rerun: 0.011 + t(0.975, 2) 4.3027 * 0.001 * sqrt(1/1 + 1/3) = 0.0159682
    one = against_baseline(base.iloc[[0]].assign(test_mse=0.0159), base)
    assert one.loc[0, "limit"] == pytest.approx(0.0159682, rel=1e-5) and one.loc[0, "verdict"] == "ok"
    assert against_baseline(base.iloc[[0]].assign(test_mse=0.0160), base).loc[0, "verdict"] == "regressed"
    # three reruns: their mean is held closer, 0.011 + 4.3027 * 0.001 * sqrt(1/3 + 1/3) = 0.0145132
    three = against_baseline(base.assign(test_mse=[0.0145, 0.0145, 0.0155]), base)  # mean 0.01483
    assert three.loc[0, "limit"] == pytest.approx(0.011 + 4.3027 * 0.001 * math.sqrt(2 / 3), rel=1e-4)
    assert three.loc[0, "verdict"] == "regressed"
    other = against_baseline(base.iloc[[0]].assign(arch="conv"), base)
    assert other.loc[0, "verdict"] == "no baseline"
    assert one.loc[0, "shared_seeds"] == 1  # seed 0 again: one of the baseline's own samples
    assert against_baseline(base.iloc[[0]].assign(seed=3), base).loc[0, "shared_seeds"] == 0


def test_the_margin_is_never_narrower_than_the_floor_and_an_improvement_is_shown_not_failed() -> None:
    base = pd.DataFrame({"arch": ["fc"] * 3, "seed": [0, 1, 2], "test_mse": [0.0100, 0.0100, 0.0101], "status": "done"})
    # mean 0.0100333, s 0.0000577: the prediction interval's margin, 4.3027 * s * sqrt(4/3) = 0.000287 (2.9%), is
    # narrower than FLOOR = 5% of the mean, 0.000502: the band is 0.0095317 to 0.0105350
    assert FLOOR == 0.05
    rerun = base.iloc[[0]].assign(seed=3)
    within = against_baseline(rerun.assign(test_mse=0.0105), base)  # 4.7% worse: beyond the interval, inside 5%
    assert within.loc[0, "limit"] == pytest.approx(0.0100333 * 1.05, rel=1e-5) and within.loc[0, "verdict"] == "ok"
    assert within.loc[0, "improved_below"] == pytest.approx(0.0100333 * 0.95, rel=1e-5)
    assert against_baseline(rerun.assign(test_mse=0.0106), base).loc[0, "verdict"] == "regressed"
    better = against_baseline(rerun.assign(test_mse=0.0095), base)
    assert better.loc[0, "verdict"] == "improved" and regressions(better) == []
    assert against_baseline(rerun.assign(test_mse=0.0096), base).loc[0, "verdict"] == "ok"
    # a wide baseline keeps its prediction interval: 0.011 + 0.0049682 is more than 5% above
    wide = pd.DataFrame({"arch": ["fc"] * 3, "seed": [0, 1, 2], "test_mse": [0.010, 0.011, 0.012], "status": "done"})
    assert against_baseline(rerun, wide).loc[0, "limit"] == pytest.approx(0.0159682, rel=1e-5)


@pytest.mark.slow
def test_a_faithful_rerun_passes_and_a_worse_one_fails(tmp_path: Path) -> None:
    study, baseline = tmp_path / "study", tmp_path / "baseline"
    assert runner.invoke(app, ["compare", *CELL, "--seeds", "3", "--results", str(study)]).exit_code == 0
    made = runner.invoke(app, ["report", "--results", str(study), "--out", str(baseline), "--format", "md",
                               "--only", "throughput"])  # fmt: skip
    assert made.exit_code == 0, made.output
    rerun = tmp_path / "rerun"
    # seed 3: the baseline ran 0, 1 and 2, and a rerun of one of them would only repeat its own sample
    assert runner.invoke(app, ["compare", *CELL, "--seed", "3", "--results", str(rerun)]).exit_code == 0
    check = ["report", "--results", str(rerun), "--out", str(tmp_path / "r"), "--format", "md", "--only",
             "throughput", "--baseline", str(baseline), "--fail-on-regression", "--json"]  # fmt: skip
    ok = runner.invoke(app, check)
    assert ok.exit_code == 0, ok.output
    [row] = json.loads(ok.stdout)["baseline"]
    assert row["verdict"] == "ok" and row["seeds"] == 1 and row["baseline_seeds"] == 3 and row["shared_seeds"] == 0
    assert "1 configs judged, 0 worse" in ok.stderr
    with sqlite3.connect(rerun / DB_NAME) as db:
        db.execute("UPDATE runs SET test_mse = test_mse * 1.2")
    bad = runner.invoke(app, check)
    assert bad.exit_code == 1
    [row] = json.loads(bad.stdout)["baseline"]
    assert row["verdict"] == "regressed" and row["test_mse"] > row["limit"]
    assert "1 worse than it allows: fc shallow L32" in bad.stderr
    alone = runner.invoke(app, ["report", "--results", str(rerun), "--fail-on-regression"])
    assert alone.exit_code == 2 and "--fail-on-regression needs --baseline" in alone.stderr


REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


@pytest.mark.slow
def test_a_rerun_of_a_reference_config_passes_against_the_published_study(tmp_path: Path) -> None:
    """The study checked in under results/reference is the baseline: fc shallow L32 on a seed the study did not run,
    trained here as the study trained it (10 epochs, the full Fashion-MNIST training split), passes; made 20% worse,
    it fails. A rerun of one of the study's own seeds would pass by construction: it repeats one of its samples."""
    study = pd.read_csv(REFERENCE / "runs.csv")
    epochs = int(study["epochs"].iloc[0])
    fresh = int(study["seed"].max()) + 1
    rerun = tmp_path / "rerun"
    trained = runner.invoke(app, ["compare", "--archs", "fc", "--depths", "shallow", "--latent-dims", "32",
                                  "--epochs", str(epochs), "--val-fraction", "0", "--seed", str(fresh),
                                  "--no-baselines", "--results", str(rerun)])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    check = ["report", "--results", str(rerun), "--out", str(tmp_path / "r"), "--format", "md", "--only",
             "throughput", "--baseline", str(REFERENCE), "--fail-on-regression", "--json"]  # fmt: skip
    ok = runner.invoke(app, check)
    assert ok.exit_code == 0, ok.output
    [row] = json.loads(ok.stdout)["baseline"]
    assert row["config"].startswith("fc shallow L32") and row["verdict"] == "ok" and row["baseline_seeds"] == 3
    assert fresh == 3 and row["shared_seeds"] == 0
    with sqlite3.connect(rerun / DB_NAME) as db:
        db.execute("UPDATE runs SET test_mse = test_mse * 1.2")
    bad = runner.invoke(app, check)
    assert bad.exit_code == 1, bad.output
    [row] = json.loads(bad.stdout)["baseline"]
    assert row["verdict"] == "regressed" and row["test_mse"] > row["limit"]
