"""Tables fit the terminal: at 80 columns no number is cut (`…`), the columns left out are named; at 200 all show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from aebench.bench.run import EFFICIENCY_NOTE
from aebench.cli.app import app
from aebench.cli.fit import Col, fit_table
from aebench.cli.render import bench_table

runner = CliRunner()
QUICK = ["--epochs", "1", "--train-size", "500", "--device", "cpu"]
GRID = ["compare", "--archs", "fc", "--depths", "shallow,medium", "--latent-dims", "2", *QUICK]
GRID_HEADERS = ("run", "config", "status", "MSE", "×PCA", "PSNR dB", "SSIM", "probe", "params", "train img/s")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs, trained once; the tests below read them back (a second identical call trains nothing)."""
    folder = tmp_path_factory.mktemp("fit") / "results"
    with pytest.MonkeyPatch.context() as mp:  # as the autouse fixture does for each test
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("AEBENCH_DATA", raising=False)
        res = runner.invoke(app, [*GRID, "--results", str(folder), "--json"])
    assert res.exit_code == 0, res.output
    return folder


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


def _headers(text: str) -> list[str]:
    head = next(line for line in text.splitlines() if line.startswith("┃"))
    return [h.strip() for h in head.strip("┃").split("┃")]


def _fits(text: str, width: int) -> None:
    assert "…" not in text, text  # no cell cut
    assert all(len(line) <= width for line in _table_lines(text)), text


def test_compare_at_80_columns_shows_whole_columns_and_names_the_rest(results: Path) -> None:
    res = runner.invoke(app, [*GRID, "--results", str(results)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _fits(res.stdout, 80)
    headers = _headers(res.stdout)
    assert headers[:3] == ["config", "status", "MSE"]  # the config and its test MSE are never left out
    note = next(line for line in res.stdout.splitlines() if line.startswith("not shown at 80 columns: "))
    named = note.removeprefix("not shown at 80 columns: ").split("; ")[0].split(", ")
    assert named and set(named) == set(GRID_HEADERS) - set(headers)  # every column is shown or named
    assert "--wide" in note and "--json" in note
    assert "fc shallow" in res.stdout and "fc medium" in res.stdout
    # where the results went and what to do next: on stderr, after the table
    assert res.stderr.strip().splitlines()[-1] == (
        f"results: {results / 'aebench.db'}; report them with: aebench report --results {results}"
    )


def test_compare_at_200_columns_or_wide_shows_everything(results: Path) -> None:
    wide = runner.invoke(app, [*GRID, "--results", str(results)], env={"COLUMNS": "200"})
    assert wide.exit_code == 0, wide.output
    _fits(wide.stdout, 200)
    assert _headers(wide.stdout) == list(GRID_HEADERS) and "not shown" not in wide.stdout
    asked = runner.invoke(app, [*GRID, "--results", str(results), "--wide"], env={"COLUMNS": "80"})
    assert asked.exit_code == 0, asked.output
    assert "…" not in asked.stdout and _headers(asked.stdout) == list(GRID_HEADERS) and "not shown" not in asked.stdout
    dry = runner.invoke(app, [*GRID, "--results", str(results), "--dry-run"], env={"COLUMNS": "80"})
    assert dry.exit_code == 0 and "…" not in dry.stdout and "done" in dry.stdout, dry.output
    as_json = runner.invoke(app, [*GRID, "--results", str(results), "--json"], env={"COLUMNS": "80"})
    # stdout is the JSON alone (two cells and PCA at their code size): the closing lines go to stderr
    assert [r["arch"] for r in json.loads(as_json.stdout)["runs"]] == ["fc", "fc", "pca"]
    assert "aebench report --results" in as_json.stderr


def test_train_at_80_columns_reads_whole(results: Path) -> None:
    args = ["train", "--arch", "fc", "--depth", "shallow", "--latent-dim", "2", *QUICK, "--results", str(results)]
    res = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _fits(res.stdout, 80)
    measures = [line.split("│")[1].strip() for line in res.stdout.splitlines() if line.startswith("│")]
    assert measures[:4] == ["test MSE", "PSNR (dB)", "SSIM", "probe acc"]  # the headers every table uses
    assert "checkpoint" in measures and "(already in the store)" in res.stdout
    record = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert record["epochs"] == 1  # the config's count, as in runs.csv
    assert [e["epoch"] for e in record["curve"]] == [1] and record["curve"][0]["train_loss"] > 0


def test_report_at_80_and_200_columns(results: Path, tmp_path: Path) -> None:
    args = ["report", "--results", str(results), "--out", str(tmp_path), "--only", "throughput"]
    narrow = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    _fits(narrow.stdout, 80)
    shown = _headers(narrow.stdout)
    assert shown[0] == "config" and "test MSE" in shown
    assert "not shown at 80 columns: " in narrow.stdout and f"runs.csv in {tmp_path} have all" in narrow.stdout
    wide = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert wide.exit_code == 0, wide.output
    _fits(wide.stdout, 200)
    every = _headers(wide.stdout)
    assert set(shown) < set(every) and "not shown" not in wide.stdout
    assert {"params", "latent", "compression (×)", "epoch (s)", "train img/s", "infer img/s"} <= set(every)


def test_bench_at_80_columns_then_its_saved_result_at_200(tmp_path: Path) -> None:
    args = ["bench", "--models", "seed-conv", "--epochs", "1", "--train-size", "256", "--device", "cpu"]
    res = runner.invoke(app, [*args, "--no-clock-check", "--results", str(tmp_path)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _fits(res.stdout, 80)
    assert _headers(res.stdout)[:3] == ["model", "mode", "s/epoch"]
    assert "not shown at 80 columns: " in res.stdout and "the saved JSON has them all" in res.stdout
    [saved] = (tmp_path / "benchmarks").glob("*.json")
    console = Console(record=True, width=200)
    fitted = bench_table(json.loads(saved.read_text()), EFFICIENCY_NOTE, 200)
    console.print(fitted.table)
    text = console.export_text()
    _fits(text, 200)
    assert not fitted.left_out and len(_headers(text)) == 9


def test_a_long_label_wraps_and_the_numbers_stay_whole() -> None:
    label = "conv deep L16 stride bilinear gelu out=tanh drop=0.2 lr=0.003 bs=64 wd=0.0001 cosine-lr seed4"
    columns = [Col("config", [label]), Col("MSE", ["0.01234"], "right"), Col("params", ["1,083,696"], "right")]
    fitted = fit_table(columns, 40)
    console = Console(record=True, width=40)
    console.print(fitted.table)
    text = console.export_text()
    _fits(text, 40)
    assert "0.01234" in text and fitted.left_out == ["params"]
    assert fitted.note("see --wide") == "not shown at 40 columns: params; see --wide"
