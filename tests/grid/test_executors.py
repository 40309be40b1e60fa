"""The Ray executor on a real local Ray instance: same store as the local executor, worker deaths survived.

The Ray tests share one `ray.init(num_cpus=2)` (the executor uses a Ray that is already
up and leaves it up); the refusals need no Ray and run everywhere.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aebench import data as datamod
from aebench.cli.app import app
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.grid.cells import train_cell
from aebench.grid.executors import create_executor, list_executors
from aebench.grid.ray import RayExecutor
from aebench.grid.runner import run_grid
from aebench.grid.store import open_store
from aebench.train import checkpoint

cli = CliRunner()
# two latent dims x two seeds: two stacks of two seeds each (--stack: the local executor stacks them, and so does Ray)
GRID = ["--depths", "shallow", "--latent-dims", "2,3", "--seeds", "2", "--epochs", "1", "--train-size", "1000",
        "--device", "cpu", "--no-download", "--stack", "--no-baselines"]  # fmt: skip


def _configs(*latent_dims: int, seeds: int = 1) -> list[RunConfig]:
    base = RunConfig(model=ModelSpec(arch="fc"), epochs=1, train_size=1000)
    return GridSpec(depths=("shallow",), latent_dims=latent_dims, seeds=seeds, base=base).expand()


@pytest.fixture(scope="module")
def ray_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install 'aebench[ray]'")
    with pytest.MonkeyPatch.context() as mp:
        # The workers inherit this environment: like the tests, they never read the user's cache or $AEBENCH_DATA.
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("worker-cache")))
        mp.delenv("AEBENCH_DATA", raising=False)
        auth_mode = os.environ.get("RAY_AUTH_MODE")
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
        yield ray
        ray.shutdown()
        if auth_mode is None:  # ray.init turns token authentication on by setting it for this process
            os.environ.pop("RAY_AUTH_MODE", None)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Local training on one thread, as each Ray worker here has (--cpus-per-run 1): the same arithmetic on both
    sides, and tiny models on a busy 2-core machine train many times faster on one thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- refusals: one line, exit 2, nothing written (no Ray needed) ----


def test_executors_are_registered() -> None:
    assert list_executors() == ["local", "ray"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "slurm"], "--executor: unknown value 'slurm'; choose from: local, ray"),
        (["--gpus-per-run", "0.25"], "--gpus-per-run does not apply to --executor local"),
        (["--ray-address", "auto"], "--ray-address does not apply to --executor local"),
        (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run: 0.0 is not allowed; it must be > 0.0"),
        (["--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run: -1.0 is not allowed; it must be >= 0.0"),
    ],
)
def test_bad_executor_options_are_refused(tmp_results: Path, args: list[str], message: str) -> None:
    res = cli.invoke(app, ["compare", *GRID, *args, "--results", str(tmp_results)])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines() == [f"aebench: error: {message}"]
    assert not tmp_results.exists()


def test_without_ray_installed_says_how_to_get_it(tmp_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    res = cli.invoke(app, ["compare", *GRID, "--executor", "ray", "--results", str(tmp_results)])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["aebench: error: --executor ray needs Ray: pip install 'aebench[ray]'"]
    assert not tmp_results.exists()


def test_device_cuda_on_ray_needs_a_gpu_share(tmp_results: Path, ray_up: Any) -> None:
    with pytest.raises(Exception, match="--device cuda with --executor ray needs --gpus-per-run > 0"):
        run_grid(_configs(2), tmp_results, device="cuda", executor="ray")
    assert not tmp_results.exists()


# ---- real grids through Ray ----


@pytest.mark.slow
def test_ray_grid_stores_what_the_local_executor_stores(
    tmp_path: Path, ray_up: Any, fashion_mnist: object, one_thread: None
) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_grid(_configs(2, 3, seeds=2), local, device="cpu", allow_download=False, stack=True)
    res = cli.invoke(app, ["compare", *GRID, "--executor", "ray", "--results", str(remote), "--json"])
    assert res.exit_code == 0, res.output
    assert [r["status"] for r in json.loads(res.stdout)["runs"]] == ["done"] * 4
    with open_store(local, create=False) as a, open_store(remote, create=False) as b:
        want, got = a.runs().set_index("run_id"), b.runs().set_index("run_id")
        assert sorted(want.index) == sorted(got.index)  # same configs, same run ids
        for run_id in want.index:
            assert got.loc[run_id, "status"] == "done"
            # Same seed, same data, same thread count: the same model (the tolerance is for float rounding).
            for metric in ("test_mse", "test_psnr", "test_ssim"):
                assert got.loc[run_id, metric] == pytest.approx(want.loc[run_id, metric], rel=1e-4)
            assert got.loc[run_id, "params"] == want.loc[run_id, "params"]
            assert got.loc[run_id, "stack_size"] == want.loc[run_id, "stack_size"] == 2  # trained as a stack on Ray too
            assert got.loc[run_id, "config_json"] == want.loc[run_id, "config_json"]
            assert got.loc[run_id, "pid"] != os.getpid()  # trained in a Ray worker, stored by this process
            curves = a.epochs(run_id), b.epochs(run_id)
            assert curves[1]["train_loss"].tolist() == pytest.approx(curves[0]["train_loss"].tolist(), rel=1e-4)
            cfg, model = checkpoint.load(remote / got.loc[run_id, "checkpoint"])
            assert cfg.run_id == run_id and isinstance(model, torch.nn.Module)

    again = cli.invoke(app, ["compare", *GRID, "--executor", "ray", "--results", str(remote), "--json"])
    assert again.exit_code == 0, again.output
    assert "4 of 4 runs already done in the store: skipped" in again.stderr
    assert [(r["status"], r["skipped"]) for r in json.loads(again.stdout)["runs"]] == [("done", True)] * 4
    with open_store(remote, create=False) as b:
        assert b.runs()["finished_at"].tolist() == got["finished_at"].tolist()  # nothing trained again


def crash_on_latent_3(config: RunConfig, device: torch.device, dataset: datamod.Dataset) -> dict[str, Any]:
    """A worker that dies (as on a segfault or the OOM killer) when handed the latent-3 cell."""
    if config.model.latent_dim == 3:
        os._exit(1)
    return train_cell(config, device, dataset)


@pytest.mark.slow
def test_a_dead_worker_fails_its_cell_and_a_rerun_completes(tmp_results: Path, ray_up: Any, one_thread: None) -> None:
    configs = _configs(2, 3, 4)
    executor = create_executor("ray", {"train": crash_on_latent_3})
    outcomes = run_grid(configs, tmp_results, device="cpu", allow_download=False, executor=executor)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]  # the grid went on past the dead worker
    assert "worker" in outcomes[1].row["error"] and "died" in outcomes[1].row["error"].lower()
    assert isinstance(executor, RayExecutor)
    assert set(executor.dataset_loads.values()) == {1}  # each worker read the dataset once, not once per cell

    again = run_grid(configs, tmp_results, device="cpu", allow_download=False)  # here, or on Ray: the same store
    assert [(o.status, o.skipped) for o in again] == [("done", True), ("done", False), ("done", True)]
    with open_store(tmp_results, create=False) as store:
        assert store.runs()["status"].tolist() == ["done"] * 3
        assert len(store.epochs()) == 3
