"""`compare --workers N`: real worker processes on one store, each cell trained once, stops and resumes as a
lone `compare` does."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aebench import api
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid.store import DB_NAME, open_store
from aebench.grid.workers import WORTH_IMAGES, cores, default_workers, threads_each

# eight small fc cells: enough that both workers get some, quick enough for the suite
GRID = ["compare", "--no-baselines", "--depths", "shallow,medium", "--latent-dims", "2,4,8,16", "--epochs", "2",
        "--train-size", "4000", "--device", "cpu"]  # fmt: skip


def _rows(results: Path) -> list[tuple[str, str, int | None, int | None]]:
    with sqlite3.connect(results / DB_NAME, timeout=30) as conn:
        return list(conn.execute("SELECT run_id, status, pid, workers FROM runs"))


def test_the_default_rule() -> None:
    cells = GridSpec(latent_dims=(2, 4, 8), base=RunConfig(model=ModelSpec(arch="fc"), epochs=10)).expand()
    big = {"fashion-mnist": 60_000}
    cpu = torch.device("cpu")
    assert default_workers(cpu, cells, big) == min(cores(), 3)  # 1.8M images to see: one worker per core
    assert default_workers(torch.device("cuda"), cells, big) == 1  # one GPU, one worker
    assert default_workers(cpu, cells[:1], big) == 1  # one cell: nothing to share
    small = {"fashion-mnist": WORTH_IMAGES // 40}  # 3 cells x 10 epochs of it: under the worth of a start
    assert default_workers(cpu, cells, small) == 1
    assert threads_each(1) == cores() and threads_each(cores() * 4) == 1


def test_workers_are_refused_where_they_do_not_apply(tmp_path: Path) -> None:
    grid = GridSpec(base=RunConfig(model=ModelSpec(arch="fc"), epochs=1, train_size=100))
    with pytest.raises(BadInput, match="--workers applies to --executor local"):
        api.compare(grid, tmp_path / "r", executor="ray", workers=2)
    with pytest.raises(BadInput, match="--workers: 0"):
        api.compare(grid, tmp_path / "r", workers=0)
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.slow
def test_two_workers_train_each_cell_once_and_record_it(tmp_results: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "aebench", *GRID, "--workers", "2", "--results", str(tmp_results),
                          "--json"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["status"] for r in out["runs"]] == ["done"] * 8 and not any(r["skipped"] for r in out["runs"])
    grid = out["grid"]
    assert grid["workers"] == 2 and grid["threads"] == threads_each(2)
    assert grid["model_epochs"] == 16 and grid["model_epochs_per_s"] == pytest.approx(16 / grid["wall_seconds"])
    rows = _rows(tmp_results)
    assert len(rows) == 8 and {r[1] for r in rows} == {"done"} and {r[3] for r in rows} == {2}
    assert len({r[2] for r in rows}) == 2  # both processes trained cells
    with open_store(tmp_results, create=False) as store:
        epochs = store.epochs()
        assert len(epochs) == 16 and not epochs.duplicated(["run_id", "epoch"]).any()  # no cell trained twice


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_stopping_the_workers_leaves_what_finished_and_resumes(tmp_results: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "aebench", *GRID, "--workers", "2", "--results", str(tmp_results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (tmp_results / DB_NAME).exists() or not any(r[1] == "done" for r in _rows(tmp_results)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted:" in stderr
    time.sleep(1.0)  # a worker killed with its parent stops on its parent-death signal
    rows = _rows(tmp_results)
    alive = [r for r in rows if r[1] == "running" and _pid_alive(r[2])]
    assert not alive  # no worker outlives the command
    if sig == signal.SIGINT:
        assert {r[1] for r in rows} == {"done"}  # every claim in flight was dropped
    done_before = {r[0] for r in rows if r[1] == "done"}
    again = subprocess.run([sys.executable, "-m", "aebench", *GRID, "--workers", "2", "--results", str(tmp_results),
                            "--json"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    runs = json.loads(again.stdout)["runs"]
    assert {r["run_id"] for r in runs if r["skipped"]} == done_before
    assert [r["status"] for r in runs] == ["done"] * 8
    with open_store(tmp_results, create=False) as store:
        assert len(store.epochs()) == 16


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
