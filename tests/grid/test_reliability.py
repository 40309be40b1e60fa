"""A grid survives being killed, runs concurrently, records failures, and refuses bad input cleanly.

The tests about processes use real processes: `python -m aebench compare` in a
subprocess, killed or interrupted with real signals.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.config import GridSpec, ModelSpec, RunConfig, model_spec
from aebench.grid import cells as cells_mod
from aebench.grid import executors as executors_mod
from aebench.grid import runner as runner_mod
from aebench.grid.store import DB_NAME, SCHEMA_VERSION, Store, open_store
from tests.conftest import MNIST_DIR

cli = CliRunner()
GRID = ["compare", "--depths", "shallow,medium,deep", "--epochs", "2", "--train-size", "3000", "--device", "cpu",
        "--no-baselines"]  # fmt: skip


def _statuses(results: Path) -> dict[str, tuple[str, str | None]]:
    """run_id -> (status, finished_at), read with a plain sqlite3 connection; {} until the store exists."""
    path = results / DB_NAME
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(path, timeout=30) as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT run_id, status, finished_at FROM runs")}
    except sqlite3.OperationalError:  # created but its tables not yet
        return {}


def _start(results: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aebench", *args, "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_a_done_run(results: Path, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s == "done" for s, _ in _statuses(results).values()):
            return
        if proc.poll() is not None:
            pytest.fail(f"compare ended before a run finished: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no run finished in time")


def _rerun_completes_exactly_the_grid(results: Path, before: dict[str, tuple[str, str | None]]) -> None:
    done_before = {rid for rid, (status, _) in before.items() if status == "done"}
    res = subprocess.run(
        [sys.executable, "-m", "aebench", *GRID, "--results", str(results), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert len(runs) == 3
    assert {r["run_id"] for r in runs if r["skipped"]} == done_before  # only the missing cells were trained
    after = _statuses(results)
    assert len(after) == 3 and all(s == "done" for s, _ in after.values())
    for rid in done_before:
        assert after[rid] == before[rid]  # a finished run is never redone or rewritten
    with open_store(results, create=False) as store:
        assert len(store.epochs()) == 3 * 2  # each run's epochs once
        assert all((results / c).is_file() for c in store.runs()["checkpoint"])


@pytest.mark.slow
def test_sigkill_mid_grid_then_rerun_finishes_only_the_missing(tmp_results: Path) -> None:
    proc = _start(tmp_results, *GRID)
    _wait_for_a_done_run(tmp_results, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _statuses(tmp_results)
    assert "done" in {s for s, _ in before.values()}
    assert all(s in ("done", "running") for s, _ in before.values())  # a killed run is never counted done
    assert not list(tmp_results.glob("runs/*/checkpoint.pt.*"))  # no half-written file under a real name
    _rerun_completes_exactly_the_grid(tmp_results, before)  # the dead process's `running` row is redone


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_cleanly_and_says_what_finished(tmp_results: Path, sig: signal.Signals) -> None:
    proc = _start(tmp_results, *GRID)
    _wait_for_a_done_run(tmp_results, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stderr and "rerun the same command" in stderr
    assert "Traceback" not in stderr
    assert "done" in stdout  # the table of what finished
    before = _statuses(tmp_results)
    assert before and all(s == "done" for s, _ in before.values())  # the run in flight was dropped, not left running
    _rerun_completes_exactly_the_grid(tmp_results, before)


@pytest.mark.slow
def test_two_concurrent_compares_share_the_grid(tmp_results: Path) -> None:
    grid = ["compare", "--no-baselines", "--depths", "shallow", "--latent-dims", "2,4,8,16", "--epochs", "1",
            "--train-size", "1500",
            "--device", "cpu", "--json"]  # fmt: skip
    procs = [_start(tmp_results, *grid) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
    trained = [{r["run_id"] for r in json.loads(stdout)["runs"] if not r["skipped"]} for stdout, _ in outputs]
    assert not trained[0] & trained[1]  # no cell trained twice
    assert len(trained[0] | trained[1]) == 4  # and none lost
    statuses = _statuses(tmp_results)
    assert len(statuses) == 4 and all(s == "done" for s, _ in statuses.values())


def test_diverged_run_is_recorded_with_its_epoch_and_the_grid_goes_on(tmp_results: Path) -> None:
    args = ["compare", "--depths", "shallow", "--outputs", "none", "--lrs", "0.001,1e6", "--epochs", "2",
            "--train-size", "1000", "--device", "cpu", "--no-baselines", "--results", str(tmp_results)]  # fmt: skip
    res = cli.invoke(app, [*args, "--json"])
    assert res.exit_code == 1, res.output
    runs = {r["lr"]: r for r in json.loads(res.stdout)["runs"]}
    assert runs[0.001]["status"] == "done"
    assert runs[1e6]["status"] == "diverged" and runs[1e6]["diverged_epoch"] == 1
    assert "non-finite" in runs[1e6]["error"] or "nan" in runs[1e6]["error"] or "inf" in runs[1e6]["error"]
    assert "1 of 2 runs did not finish: 0 failed, 1 diverged" in res.stderr
    again = cli.invoke(app, args)
    assert "2 of 2 runs already done in the store" in again.stderr  # a divergence is a result, not redone


def test_failed_run_is_recorded_with_its_reason_and_retried(
    tmp_results: Path, fashion_mnist: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = GridSpec(depths=("shallow",), latent_dims=(2, 4, 8), base=RunConfig(model=ModelSpec(arch="fc"), epochs=1,
                       train_size=1000)).expand()  # fmt: skip
    real_run_one = cells_mod.run_one

    def oom_on_the_second(cfg: RunConfig, **kwargs: object) -> object:
        if cfg.model.latent_dim == 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return real_run_one(cfg, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cells_mod, "run_one", oom_on_the_second)
    outcomes = runner_mod.run_grid(configs, tmp_results, device="cpu", allow_download=False)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert outcomes[1].row["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    monkeypatch.setattr(cells_mod, "run_one", real_run_one)
    again = runner_mod.run_grid(configs, tmp_results, device="cpu", allow_download=False)
    assert [(o.status, o.skipped) for o in again] == [("done", True), ("done", False), ("done", True)]


@pytest.mark.parametrize("where", ["after a run is stored", "as the next run is claimed"])
def test_interrupt_between_runs_keeps_what_finished_and_leaves_no_claim(
    tmp_results: Path, fashion_mnist: object, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    configs = GridSpec(depths=("shallow",), latent_dims=(2, 4, 8), base=RunConfig(model=ModelSpec(arch="fc"), epochs=1,
                       train_size=500)).expand()  # fmt: skip
    claims = 0
    real_claim = Store.claim

    def claim_then_interrupt(self: object, cfg: RunConfig) -> bool:
        nonlocal claims
        claims += 1
        took = real_claim(self, cfg)  # type: ignore[arg-type]
        if where == "as the next run is claimed" and claims == 2:
            raise KeyboardInterrupt  # the claim is in the store, the run not yet under way
        return took

    class StopAfterFirst(executors_mod.GridEvents):
        def run_end(self, outcome: cells_mod.Outcome) -> None:
            if where == "after a run is stored":
                raise KeyboardInterrupt

    monkeypatch.setattr(Store, "claim", claim_then_interrupt)
    with pytest.raises(executors_mod.GridInterrupted) as info:
        runner_mod.run_grid(configs, tmp_results, device="cpu", allow_download=False, events=StopAfterFirst())
    assert [o.status for o in info.value.outcomes] == ["done"]  # what finished is reported
    assert [s for s, _ in _statuses(tmp_results).values()] == ["done"]  # and no `running` claim is left behind


def test_truncated_data_file_is_refused_and_nothing_written(tmp_path: Path, tmp_results: Path) -> None:
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        source = MNIST_DIR / f"{stem.replace('train', 't10k')}.gz"
        (folder / f"{stem}.gz").write_bytes(source.read_bytes()[: 3000 if "images" in stem else None])
    res = cli.invoke(
        app, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--results", str(tmp_results)]
    )
    assert res.exit_code == 2
    [line] = res.stderr.strip().splitlines()
    assert "cannot be read as IDX" in line or "truncated" in line
    assert not tmp_results.exists()


def _store_of_schema_1(results: Path) -> list[tuple[object, ...]]:
    """A real store as the previous schema wrote it, with one finished run in it."""
    with open_store(results) as store:
        cfg = RunConfig(model=ModelSpec(arch="seed-ae"), epochs=1)
        store.claim(cfg)
        store.finish(cfg, "done", {"test_mse": 0.0123})
        later = ("heartbeat_at", "precision", "infer_samples_per_s_min", "infer_samples_per_s_max", "stack_size",
                 "cuda_graph", "step", "timed_steps", "engine_step", "onednn", "stack_samples_per_s",
                 "stack_epoch_seconds", "machine", "flush_denormal", "data_dir", "data_digest")  # fmt: skip
        for column in later:
            store.conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")  # added by schemas 2 to 5, and since
        store.conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        return store.conn.execute("SELECT run_id, status, test_mse FROM runs").fetchall()


def test_older_schema_is_migrated_after_a_backup(tmp_results: Path) -> None:
    original = _store_of_schema_1(tmp_results)
    with open_store(tmp_results) as store:
        assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert {"heartbeat_at", "precision"} <= set(store.runs().columns)
        assert store.runs()["precision"].tolist() == ["fp32"]
        assert store.runs()["cuda_graph"].tolist() == [0]
        assert store.runs()["test_mse"].tolist() == [0.0123]
        assert store.runs()["step"].tolist() == ["auto"]  # schema 5: every earlier run took the default step
        assert store.runs()["engine_step"].isna().all()  # and its speed is the old epoch-timer figure, told apart
        assert store.runs()[["data_dir", "data_digest"]].isna().all().all()  # added on open: not recorded, not guessed
    [backup] = tmp_results.glob(f"{DB_NAME}.schema1-*.bak")
    with sqlite3.connect(backup) as old:  # the backup is the store as it was: schema 1, same rows
        assert old.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
        assert old.execute("SELECT run_id, status, test_mse FROM runs").fetchall() == original


def test_a_store_without_a_declared_column_gains_it_on_open(tmp_results: Path) -> None:
    """A metric or curve added to `aebench.columns` needs no migration: an older store gets the column, its
    runs read NULL there, and what they had is kept."""
    cfg = RunConfig(model=model_spec("seed-ae"), epochs=1)
    with open_store(tmp_results) as store:
        store.claim(cfg)
        store.finish(cfg, "done", {"test_mse": 0.0123}, [{"epoch": 1, "train_loss": 0.5, "test_loss": 0.6,
                                                          "seconds": 1.0, "lr": 1e-3}])  # fmt: skip
        store.conn.execute("ALTER TABLE runs DROP COLUMN still_improving")
        store.conn.execute("ALTER TABLE epochs DROP COLUMN val_loss")
    with open_store(tmp_results) as store:
        runs, epochs = store.runs(), store.epochs()
    assert runs["test_mse"].tolist() == [0.0123] and runs["still_improving"].isna().all()
    assert epochs["test_loss"].tolist() == [0.6] and epochs["val_loss"].isna().all()
    assert not list(tmp_results.glob(f"{DB_NAME}.schema*.bak"))  # an addition rewrites nothing: no backup


def test_newer_schema_is_refused_untouched(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        store.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = (tmp_results / DB_NAME).read_bytes()
    res = cli.invoke(app, ["train", "--arch", "seed-ae", "--results", str(tmp_results)])
    assert res.exit_code == 2
    assert "has store schema 99" in res.stderr and "upgrade aebench" in res.stderr
    assert (tmp_results / DB_NAME).read_bytes() == before
    assert not list(tmp_results.glob("*.bak"))


# ---- random grid specs: a valid grid or one clear refusal, never anything else ----

_VALUES = {
    "--archs": ["fc", "conv", "seed-ae", "seed-flexible", "cnn", ""],
    "--depths": ["shallow", "medium", "deep", "huge"],
    "--latent-dims": ["2", "16", "0", "-1", "x", "1.5"],
    "--downsample": ["pool", "stride", "avg"],
    "--upsample": ["transpose", "bilinear", "nearest"],
    "--activations": ["relu", "elu", "gelu", "leakyrelu", "swish"],
    "--outputs": ["sigmoid", "tanh", "none", "relu"],
    "--losses": ["mse", "bce", "l1", "huber"],
    "--lrs": ["0.001", "1e-2", "0", "-1", "fast"],
    "--pretrain": ["none", "greedy", "always"],
    "--datasets": ["fashion-mnist", "mnist", "kmnist", "cifar10"],
}
_option = st.sampled_from(sorted(_VALUES)).flatmap(
    lambda flag: st.tuples(
        st.just(flag),
        st.one_of(
            st.lists(st.sampled_from(_VALUES[flag]), min_size=1, max_size=3).map(",".join),
            st.text(max_size=8),
        ),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=st.lists(_option, max_size=4), seeds=st.integers(min_value=-2, max_value=3))
def test_random_grid_specs_build_or_refuse_with_exit_2(
    tmp_path: Path, options: list[tuple[str, str]], seeds: int
) -> None:
    results = tmp_path / f"r{abs(hash((tuple(options), seeds)))}"
    args = ["compare", "--dry-run", "--json", "--seeds", str(seeds), "--results", str(results)]
    for flag, value in options:
        args += [flag, value]
    res = cli.invoke(app, args)
    assert res.exit_code in (0, 2), (args, res.output, res.exception)
    if res.exit_code == 0:
        cells = json.loads(res.stdout)
        assert cells and all(c["status"] == "to train" for c in cells)
    else:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aebench: error: "), res.stderr
        assert "Traceback" not in res.output
    assert not results.exists()
