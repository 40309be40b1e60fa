"""Answers that say whether they hold beyond their budget: convergence, who led over the epochs, equal budgets,
PCA beside every config, and no rank for a model without a bottleneck."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.report.convergence import history, note
from aebench.report.plots import plot_mse_vs_latent

runner = CliRunner()


def test_history_says_who_led_and_when_that_changed() -> None:
    assert history([("medium", [0.5, 0.3, 0.2]), ("deep", [0.6, 0.4, 0.3])]) == "medium best at every epoch"
    assert history([("deep", [0.6, 0.4, 0.1]), ("medium", [0.5, 0.3, 0.2])]) == "deep overtook medium at epoch 3"
    assert history([("a", [0.5, 0.4, 0.3, 0.2]), ("b", [0.6, 0.3, 0.35, 0.4])]) == "a overtook b at epoch 3"
    assert history([("a", [0.5])]) is None


def test_a_note_says_whether_the_compared_configs_were_still_improving() -> None:
    falling = [{"still_improving": 4.2, "curve": [0.3, 0.2]}, {"still_improving": 2.1, "curve": [0.4, 0.3]}]
    assert note(falling, ["medium", "deep"]) == (
        "still falling (medium 4.2%, deep 2.1% an epoch): this may change with longer training; medium best at every "
        "epoch"
    )
    flat = [{"still_improving": 0.1, "curve": []}, {"still_improving": -0.2, "curve": []}]
    assert note(flat, ["a", "b"]) == "both converged (under 0.5% an epoch at the end)"
    assert note([{"still_improving": None}, {}], ["a", "b"]) == ""


@pytest.mark.slow
def test_the_report_holds_configs_to_pca_budgets_and_bottlenecks(tmp_path: Path) -> None:
    results = tmp_path / "results"
    common = ["--epochs", "2", "--train-size", "1000", "--device", "cpu", "--results",
              str(results)]  # fmt: skip
    for grid in (["--depths", "shallow,deep", "--pretrain", "none,greedy", "--latent-dims", "8"],
                 ["--archs", "seed-conv"]):  # fmt: skip
        made = runner.invoke(app, ["compare", *grid, *common, "--json"])
        assert made.exit_code == 0, made.output
    rows = {r["run_id"]: r for r in json.loads(made.stdout)["runs"]}
    assert all(r["epochs_run"] == 2 and r["train_steps"] == 2 * 8 for r in rows.values())  # 900 images, batch 128
    res = runner.invoke(app, ["report", "--results", str(results), "--out", str(tmp_path / "r"), "--format", "md",
                              "--only", "mse_vs_latent", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["convergence"]["judged"] == 5 and "converged: validation loss falling less than" in (
        rep["convergence"]["rule"])  # fmt: skip
    note_ = rep["not_ranked"]
    # greedy pretraining on top of the epochs: more steps, not ranked with the others; PCA is the bar, not a rival;
    # seed-conv's 3,136-number code is four times the image
    unequal, apart = note_.split("; not ranked: ")
    assert "optimizer steps than their 2 epochs' worth (pretraining counted): " in unequal
    assert "fc shallow greedy" in unequal and "fc deep greedy" in unequal
    assert "no-pretrain" not in unequal and apart == "pca (baseline), seed-conv (no bottleneck)"
    answers = {a["question"]: a for a in rep["answers"]}
    best = answers["Which config reconstructs best (lowest test MSE)?"]
    assert best["best"] in {"fc shallow no-pretrain", "fc deep no-pretrain"}
    assert "still falling" in best["convergence"] and "this may change with longer training" in best["answer"]
    runs = pd.read_csv(tmp_path / "r" / "runs.csv")
    for column in ("best_epoch", "epochs_run", "still_improving", "train_steps", "train_flops", "val_fraction",
                   "data_dir", "data_digest"):  # fmt: skip
        assert column in runs.columns, column
    trained = runs[runs["arch"] != "pca"]
    assert trained["still_improving"].notna().all() and (trained["train_flops"] > 0).all()
    epochs = pd.read_csv(tmp_path / "r" / "epochs.csv")
    assert epochs["val_loss"].notna().all()
    page = (tmp_path / "r" / "report.md").read_text()
    assert "Converged: 0 of 5 trained configs" in page and "MSE ×PCA" in page and "no bottleneck" in page


def test_mse_vs_latent_draws_pca_as_the_dashed_black_baseline() -> None:
    configs = pd.DataFrame({
        "arch": ["fc", "fc", "pca", "pca"], "depth": ["medium", "medium", None, None], "latent_dim": [2, 32, 2, 32],
        "test_mse": [0.04, 0.011, 0.046, 0.0151], "probe_acc": [0.6, 0.8, 0.5, 0.75], "seeds": [1] * 4,
        "label": ["fc medium L2", "fc medium L32", "pca L2", "pca L32"],
    })  # fmt: skip
    fig = plot_mse_vs_latent(configs)
    ax = fig.axes[0]
    lines = {str(c.get_label()): c.lines[0] for c in ax.containers}  # errorbar containers: (line, caps, bars)
    assert set(lines) == {"fc", "PCA (linear baseline)"}
    pca = lines["PCA (linear baseline)"]
    assert pca.get_linestyle() == "--" and pca.get_color() == "black" and list(pca.get_ydata()) == [0.046, 0.0151]
