"""The command line as a user meets it: real runs, resume, JSON, and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.grid.store import DB_NAME, open_store

runner = CliRunner()
QUICK = ["--epochs", "1", "--train-size", "2000", "--device", "cpu"]


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_compare_exercise_5_then_resume(tmp_results: Path) -> None:
    first = runner.invoke(
        app, ["compare", "--depths", "shallow,medium,deep", *QUICK, "--results", str(tmp_results), "--json"]
    )
    assert first.exit_code == 0, first.output
    runs = json.loads(first.stdout)["runs"]
    assert [r["depth"] for r in runs] == ["shallow", "medium", "deep", None]  # and PCA at their code size
    assert [r["params"] for r in runs] == [209_968, 1_083_696, 1_469_744, 2 * 784 * 32 + 32 + 784]
    assert runs[-1]["arch"] == "pca" and runs[-1]["latent_size"] == 32
    assert all(r["status"] == "done" and not r["skipped"] and r["test_mse"] < 0.2 for r in runs)
    with open_store(tmp_results) as store:
        before = store.runs()
        assert len(store.epochs()) == 3
    for r in runs:
        assert (tmp_results / r["checkpoint"]).is_file()

    again = runner.invoke(app, ["compare", "--depths", "shallow,medium,deep", *QUICK, "--results", str(tmp_results)])
    assert again.exit_code == 0, again.output
    assert "4 of 4 runs already done in the store: skipped" in again.stderr
    assert "grid: " in again.stderr and "0 model-epochs trained" in again.stderr  # its own speed: nothing new
    assert "model-epochs/s, 1 worker x" in again.stderr
    with open_store(tmp_results) as store:
        after = store.runs()
    assert after["finished_at"].tolist() == before["finished_at"].tolist()  # nothing was trained again
    assert after["wall_seconds"].tolist() == before["wall_seconds"].tolist()


def test_train_prints_a_summary_and_json(tmp_results: Path) -> None:
    res = runner.invoke(app, ["train", "--arch", "conv", "--depth", "shallow", "--downsample", "stride",
                              "--latent-dim", "8", *QUICK, "--results", str(tmp_results)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "MSE" in res.stdout and "done" in res.stdout
    js = runner.invoke(app, ["train", "--arch", "conv", "--depth", "shallow", "--downsample", "stride",
                             "--latent-dim", "8", *QUICK, "--results", str(tmp_results), "--json"])  # fmt: skip
    record = json.loads(js.stdout)
    assert record["skipped"] is True and record["downsample"] == "stride" and record["latent_size"] == 8
    assert record["epochs"] == 1  # the count, as in runs.csv; the per-epoch losses are the curve
    assert len(record["curve"]) == 1 and record["curve"][0]["train_loss"] > 0


def test_a_diverged_run_exits_1_without_an_error_line(tmp_results: Path) -> None:
    res = runner.invoke(app, ["train", "--depth", "shallow", "--output", "none", "--lr", "1e6", "--epochs", "2",
                              "--train-size", "512", "--device", "cpu", "--results", str(tmp_results)])  # fmt: skip
    assert res.exit_code == 1, res.output
    assert "diverged" in res.stdout and "aebench: error" not in res.stderr


def test_models_json_lists_the_zoo_with_counts() -> None:
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0
    params = {m["name"]: m["params"] for m in json.loads(res.stdout)}
    assert params["seed-ae"] == 644_804 and params["seed-conv"] == 225 and params["fc"] == 1_083_696


def test_models_table_gets_room_when_piped() -> None:
    res = runner.invoke(app, ["models", "seed-*"])
    assert res.exit_code == 0, res.output
    assert "aebench models (sized for fashion-mnist)" in res.stdout and "644,804" in res.stdout
    assert max(map(len, res.stdout.splitlines())) > 80  # not a terminal: 200 columns, not rich's 80


def test_datasets_shows_where_fashion_mnist_is() -> None:
    res = runner.invoke(app, ["datasets", "--json"])
    found = {d["name"]: d["folder"] for d in json.loads(res.stdout)["datasets"]}
    assert found["fashion-mnist"] is not None


def test_datasets_table_says_where_it_looked_and_how_to_get_the_rest(tmp_path: Path) -> None:
    res = runner.invoke(app, ["datasets", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = {line.split()[1]: line for line in res.stdout.splitlines() if line.startswith("│")}
    assert "not found" in rows["kmnist"] and "fashion-mnist" in rows["fashion-mnist"].split("│")[2]
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith(f"looked in: {tmp_path}, ")
    assert any(line.startswith("kmnist: get it with `aebench train --dataset kmnist`") for line in lines[1:])


def test_dry_run_writes_nothing(tmp_results: Path) -> None:
    res = runner.invoke(app, ["compare", "--archs", "fc,conv", "--latent-dims", "2,16", "--dry-run", "--json",
                              "--results", str(tmp_results)])  # fmt: skip
    assert res.exit_code == 0, res.output
    cells = json.loads(res.stdout)  # 2 archs x 2 latent sizes, and PCA at each size
    assert [c["arch"] for c in cells] == ["fc", "fc", "conv", "conv", "pca", "pca"]
    assert not tmp_results.exists()


BAD_INPUTS = [
    (["compare", "--archs", "fc,cnn"], "unknown arch 'cnn'; choose from: conv, fc"),
    (["compare", "--depths", "huge"], "--depths: unknown value 'huge'"),
    (["compare", "--datasets", "cifar10"], "unknown dataset 'cifar10'; choose from: mnist, fashion-mnist, kmnist"),
    (["compare", "--activations", "swish"], "--activations: unknown value 'swish'"),
    (["compare", "--losses", "huber"], "--losses: unknown value 'huber'"),
    (["compare", "--archs", "conv", "--downsample", "avg"], "--downsample: unknown value 'avg'"),
    (["compare", "--archs", "conv", "--upsample", "nearest"], "--upsample: unknown value 'nearest'"),
    (["compare", "--latent-dims", "0"], "--latent-dims: 0 is not allowed"),
    (["compare", "--latent-dims", "-2"], "--latent-dims: -2 is not allowed"),
    (["compare", "--latent-dims", "abc"], "'abc' is not a whole number"),
    (["compare", "--epochs", "0"], "--epochs: 0 is not allowed"),
    (["compare", "--batch-sizes", "0"], "--batch-sizes: 0 is not allowed"),
    (["compare", "--seeds", "0"], "--seeds: 0 is not allowed"),
    (["compare", "--lrs", "0"], "--lr: 0.0 is not allowed"),
    (["compare", "--lrs", "-1e-3"], "--lr: -0.001 is not allowed"),
    (["compare", "--downsample", "stride"], "--downsample does not apply to arch fc"),
    (["train", "--arch", "seed-ae", "--latent-dim", "8"], "--latent-dim does not apply to arch 'seed-ae'"),
    (["train", "--arch", "fc", "--upsample", "bilinear"], "--upsample does not apply to arch 'fc'"),
    (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
    (["train", "--device", "tpu"], "--device: unknown value 'tpu'"),
    (["train", "--dataset", "kmnist", "--no-download"], "dataset 'kmnist' not found"),
    (["train", "--nope"], "No such option"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_results: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, "--results", str(tmp_results)] if args[-1] != "--nope" else args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("aebench: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not tmp_results.exists()


def test_unwritable_results_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["train", "--arch", "seed-conv", *QUICK, "--results", str(blocker / "r")])
    assert res.exit_code == 2 and res.stderr == (
        f"aebench: error: --results {blocker / 'r'}: {blocker} is a file, so no folder can be made under it\n"
    )
    res = runner.invoke(app, ["train", "--arch", "seed-conv", *QUICK, "--results", str(blocker)])
    assert res.exit_code == 2
    assert res.stderr == f"aebench: error: --results {blocker}: {blocker} is a file, not a folder\n"
    assert blocker.read_text() == "x"


def test_debug_shows_the_traceback(tmp_results: Path) -> None:
    res = runner.invoke(app, ["compare", "--archs", "cnn", "--debug", "--results", str(tmp_results)])
    assert res.exit_code != 0 and res.exception is not None


def test_foreign_store_is_refused_untouched(tmp_results: Path) -> None:
    tmp_results.mkdir()
    (tmp_results / DB_NAME).write_bytes(b"not sqlite" * 50)
    res = runner.invoke(app, ["train", "--arch", "seed-conv", *QUICK, "--results", str(tmp_results)])
    assert res.exit_code == 2 and "not an aebench results store" in res.stderr
    assert (tmp_results / DB_NAME).read_bytes() == b"not sqlite" * 50
