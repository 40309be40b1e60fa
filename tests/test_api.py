"""The library behind the commands, called as a notebook or a script would: real data, a real store, no CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from aebench import api, data
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid.cells import Outcome
from aebench.grid.store import open_store
from aebench.models.catalog import model_rows

QUICK = {"epochs": 2, "train_size": 512}


def test_train_returns_the_outcome_and_its_curve_from_the_store(tmp_results: Path, fashion_mnist: data.Dataset) -> None:
    config = RunConfig(model=ModelSpec(arch="seed-conv"), **QUICK)
    first = api.train(config, tmp_results, device="cpu", allow_download=False)
    assert first.outcome.status == "done" and not first.outcome.skipped
    assert first.outcome.run_id == config.run_id and first.outcome.row["params"] == 225
    assert [e["epoch"] for e in first.curve] == [1, 2]
    assert all("run_id" not in e and e["train_loss"] > 0 and e["seconds"] > 0 for e in first.curve)
    with open_store(tmp_results) as store:
        assert store.epochs(config.run_id)["train_loss"].tolist() == [e["train_loss"] for e in first.curve]

    again = api.train(config, tmp_results, device="cpu", allow_download=False)  # read back, not retrained
    assert again.outcome.skipped and again.outcome.status == "done"
    assert again.curve == first.curve
    assert again.outcome.row["test_mse"] == first.outcome.row["test_mse"]


def test_compare_counts_what_diverged_and_shows_the_outcomes_first(
    tmp_results: Path, fashion_mnist: data.Dataset
) -> None:
    grid = GridSpec(
        archs=("fc",), depths=("shallow",), outputs=("none",), lrs=(1e-3, 1e6),
        base=RunConfig(model=ModelSpec(arch="fc"), **QUICK),
    )  # fmt: skip
    shown: list[tuple[list[Outcome], api.GridSpeed]] = []
    result = api.compare(grid, tmp_results, device="cpu", allow_download=False, baselines=False,
                         on_trained=lambda outcomes, speed: shown.append((outcomes, speed)))  # fmt: skip
    assert [o.config.lr for o in result.outcomes] == [1e-3, 1e6]
    assert [o.status for o in result.outcomes] == ["done", "diverged"]
    assert (result.failed, result.diverged, result.unfinished) == (0, 1, 1)
    assert result.exported is None  # no MLflow asked for
    assert shown == [(result.outcomes, result.speed)]
    assert result.speed is not None and result.speed.workers == 1  # 2 small cells: one worker by the rule
    assert result.speed.model_epochs == QUICK["epochs"]  # the done cell's; a diverged run's epochs are not counted
    assert result.speed.wall_seconds > 0
    assert result.speed.model_epochs_per_s == result.speed.model_epochs / result.speed.wall_seconds

    plan = api.compare_plan(grid, tmp_results, baselines=False)
    assert plan["status"].tolist() == ["done", "diverged"]
    assert plan["run_id"].tolist() == [o.run_id for o in result.outcomes]
    assert list(plan.columns) == ["run_id", "arch", "lr", "status"]  # only the axes that vary, and the arch


def test_compare_plan_writes_nothing(tmp_results: Path) -> None:
    grid = GridSpec(archs=("fc", "conv"), latent_dims=(2, 16))
    plan = api.compare_plan(grid, tmp_results)
    assert len(plan) == 6 and set(plan["status"]) == {"to train"}  # and PCA at each code size
    assert plan["latent_dim"].tolist() == [2, 16, 2, 16, 2, 16] and plan["arch"].tolist()[4:] == ["pca", "pca"]
    assert not tmp_results.exists()


@pytest.mark.parametrize(
    ("executor", "request_", "message"),
    [
        ("nope", api.MlflowRequest(), "--executor: unknown value 'nope'"),
        ("local", api.MlflowRequest(uri="sqlite:///x.db"), "--mlflow-uri needs --mlflow"),
        ("local", api.MlflowRequest(experiment="e"), "--experiment needs --mlflow"),
    ],
)
def test_compare_refuses_a_bad_request_before_anything_is_written(
    tmp_results: Path, executor: str, request_: api.MlflowRequest, message: str
) -> None:
    grid = GridSpec(archs=("seed-conv",))
    for call in (api.compare, api.compare_plan):
        with pytest.raises(BadInput, match=message):
            call(grid, tmp_results, executor=executor, request=request_)
    assert not tmp_results.exists()


def test_locate_finds_each_dataset_or_says_how_to_get_it(tmp_path: Path, fashion_mnist: data.Dataset) -> None:
    folder = tmp_path / "data" / "mnist"  # Fashion-MNIST's files under MNIST's name: only the data dir has them
    folder.mkdir(parents=True)
    for source in fashion_mnist.folder.glob("*-ubyte*"):
        (folder / source.name).symlink_to(source)
    places = data.locate(tmp_path / "data")
    assert places.searched[0] == tmp_path / "data" and places.searched == data.search_roots(tmp_path / "data")
    by_name = {p.name: p for p in places.datasets}
    assert list(by_name) == list(data.DATASETS)
    assert by_name["mnist"].folder == folder and by_name["mnist"].hint is None
    assert by_name["fashion-mnist"].folder == fashion_mnist.folder
    assert by_name["kmnist"].folder is None and by_name["kmnist"].hint == data.how_to_get("kmnist")
    record = places.to_json()
    assert record["searched"][0] == str(tmp_path / "data")
    assert {"name": "kmnist", "folder": None} in record["datasets"]


def test_model_rows_size_the_zoo_for_a_dataset() -> None:
    rows = {r["name"]: r for r in model_rows("seed-*", "mnist")}
    assert set(rows) == {"seed-ae", "seed-simple", "seed-deep", "seed-conv", "seed-deepconv", "seed-flexible"}
    ae = rows["seed-ae"]
    assert ae["params"] == 644_804 == ae["encoder_params"] + ae["decoder_params"]
    assert ae["latent_size"] == 20 and ae["options"] == []
    assert rows["seed-flexible"]["options"] == ["latent_dim"] and rows["seed-flexible"]["latent_size"] == 64
    with pytest.raises(BadInput, match="unknown dataset 'cifar10'"):
        model_rows("*", "cifar10")
