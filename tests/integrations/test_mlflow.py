"""Runs logged to a real local MLflow store and read back with MLflow's own API equal the SQLite store's."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.config import RunConfig
from aebench.grid import cells as cells_mod
from aebench.grid.store import open_store

cli = CliRunner()
# a diverged cell (lr 1e6) and one that fails (run_one patched) until it is retried and done: every kind of row
GRID = ["compare", "--depths", "shallow", "--latent-dims", "2", "--outputs", "none", "--lrs", "0.001,1e6",
        "--epochs", "2", "--train-size", "1000", "--device", "cpu", "--no-download", "--no-baselines"]  # fmt: skip


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models on a busy 2-core machine train many times faster on one torch thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mlflow_mod() -> Any:
    return pytest.importorskip("mlflow", reason="the MLflow export needs MLflow: pip install 'aebench[mlflow]'")


def _children(mlflow: Any, experiment: str) -> Any:
    runs = mlflow.search_runs(experiment_names=[experiment])
    return runs[runs["tags.aebench.kind"] == "run"].set_index("tags.aebench.run_id")


def _check_against_store(mlflow: Any, results: Path, experiment: str) -> Any:
    """Every store row is one child run of one parent, with the store's params, metrics, curves and files."""
    from mlflow import MlflowClient

    client = MlflowClient()
    runs = mlflow.search_runs(experiment_names=[experiment])
    [parent] = runs[runs["tags.aebench.kind"] == "grid"]["run_id"]
    children = _children(mlflow, experiment)
    with open_store(results, create=False) as store:
        rows = store.runs().set_index("run_id")
        assert sorted(children.index) == sorted(rows.index)  # one MLflow run per aebench run, no duplicates
        for run_id, row in rows.iterrows():
            got = children.loc[run_id]
            assert got["tags.mlflow.parentRunId"] == parent
            assert got["status"] == {"done": "FINISHED", "failed": "FAILED", "diverged": "FAILED"}[row["status"]]
            assert got["tags.aebench.status"] == row["status"]
            config = RunConfig.from_dict(json.loads(row["config_json"]))
            params = {k: str(v) for k, v in config.columns().items() if v is not None}
            assert {k: got[f"params.{k}"] for k in params} == params
            if row["status"] != "done":
                assert got["tags.aebench.error"] == row["error"]
                assert not client.get_metric_history(got["run_id"], "train_loss")
                continue
            for metric in ("test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "train_samples_per_s"):
                assert got[f"metrics.{metric}"] == pytest.approx(row[metric], rel=1e-12), metric
            curve = store.epochs(run_id)
            history = client.get_metric_history(got["run_id"], "train_loss")
            assert [(m.step, m.value) for m in history] == list(zip(curve["epoch"], curve["train_loss"], strict=True))
            history = client.get_metric_history(got["run_id"], "test_loss")
            assert [m.value for m in sorted(history, key=lambda m: m.step)] == curve["test_loss"].tolist()
            files = {a.path for a in client.list_artifacts(got["run_id"])}
            files |= {a.path for a in client.list_artifacts(got["run_id"], "checkpoint")}
            assert {"reconstructions.png", "checkpoint/checkpoint.pt", "checkpoint/config.json"} <= files
    return children


@pytest.mark.slow
def test_grid_in_mlflow_equals_the_store_and_exports_never_duplicate(
    tmp_path: Path, mlflow_mod: Any, monkeypatch: pytest.MonkeyPatch, fashion_mnist: object, one_thread: None
) -> None:
    results, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what mlflow.search_runs reads
    real_run_one = cells_mod.run_one

    def oom_on_lr_1e_3(cfg: RunConfig, **kwargs: Any) -> Any:
        if cfg.lr == 0.001:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run_one(cfg, **kwargs)

    monkeypatch.setattr(cells_mod, "run_one", oom_on_lr_1e_3)
    mlflow_flags = ["--mlflow", "--mlflow-uri", uri, "--experiment", "exercise-1", "--results", str(results)]
    first = cli.invoke(app, [*GRID, *mlflow_flags])
    assert first.exit_code == 1, first.output  # not every cell finished, and the grid is in MLflow all the same
    assert "2 runs in experiment 'exercise-1'" in first.stderr and "(2 new, 0 replaced" in first.stderr
    before = _check_against_store(mlflow_mod, results, "exercise-1")
    assert sorted(before["tags.aebench.status"]) == ["diverged", "failed"]

    again = cli.invoke(app, ["export", "mlflow", "--results", str(results), "--mlflow-uri", uri,
                             "--experiment", "exercise-1", "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["new"] == summary["replaced"] == [] and len(summary["unchanged"]) == 2
    assert len(mlflow_mod.search_runs(experiment_names=["exercise-1"])) == 3  # the parent and its 2 children

    monkeypatch.setattr(cells_mod, "run_one", real_run_one)  # the failed cell is retried, then done
    retry = cli.invoke(app, [*GRID, *mlflow_flags])
    assert "(0 new, 1 replaced, 1 already there)" in retry.stderr, retry.output
    after = _check_against_store(mlflow_mod, results, "exercise-1")
    assert sorted(after["tags.aebench.status"]) == ["diverged", "done"]
    unchanged = [rid for rid in before.index if before.loc[rid, "tags.aebench.status"] != "failed"]
    assert after.loc[unchanged, "run_id"].tolist() == before.loc[unchanged, "run_id"].tolist()  # left as they were


def test_default_store_is_a_database_in_the_results_folder(tmp_path: Path) -> None:
    from aebench.integrations.mlflow import default_uri

    assert default_uri(tmp_path / "results") == f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*GRID, "--mlflow"], "--mlflow needs MLflow: pip install 'aebench[mlflow]'"),
        (["export", "mlflow"], "aebench export mlflow needs MLflow: pip install 'aebench[mlflow]'"),
    ],
)
def test_without_mlflow_installed_says_how_to_get_it(
    tmp_results: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets where it is not installed
    res = cli.invoke(app, [*args, "--results", str(tmp_results)])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines() == [f"aebench: error: {message}"]
    assert not tmp_results.exists()  # refused before anything was trained


@pytest.mark.parametrize("flag", ["--mlflow-uri", "--experiment"])
def test_mlflow_options_without_mlflow_are_refused(tmp_results: Path, flag: str) -> None:
    res = cli.invoke(app, [*GRID, flag, "x", "--results", str(tmp_results)])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [f"aebench: error: {flag} needs --mlflow"]


def test_export_of_a_missing_store_is_one_line(tmp_results: Path, mlflow_mod: Any) -> None:
    res = cli.invoke(app, ["export", "mlflow", "--results", str(tmp_results)])
    assert res.exit_code == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("aebench: error: no results store at")
