"""The SQLite store: claims, one-transaction writes, stale claims, refusing foreign files."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aebench.config import RunConfig, model_spec
from aebench.errors import NoSpace, StoreError, Unwritable
from aebench.grid.store import DB_NAME, open_store

CFG = RunConfig(model=model_spec("fc", depth="shallow"), epochs=2)


def test_new_store_is_wal_with_schema(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"meta", "runs", "epochs"} <= tables


def test_claim_finish_read(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        assert store.claim(CFG)
        assert store.status(CFG.run_id) == "running"
        assert not store.claim(CFG)  # this process holds it and is alive
        epochs = [{"epoch": i, "train_loss": 0.1 / i, "test_loss": 0.2 / i, "seconds": 1.0, "lr": 1e-3} for i in (1, 2)]
        store.finish(CFG, "done", {"test_mse": 0.01, "params": 209_968, "not_a_column": 1}, epochs, checkpoint="c.pt")
        assert not store.claim(CFG)  # done stays done
        row = store.run(CFG.run_id)
        assert row is not None
        assert (row["status"], row["test_mse"], row["params"], row["depth"], row["checkpoint"]) == (
            "done", 0.01, 209_968, "shallow", "c.pt"
        )  # fmt: skip
        assert store.epochs(CFG.run_id)["test_loss"].tolist() == [0.2, 0.1]
        assert len(store.runs()) == 1


def test_stale_claim_of_a_dead_process_is_taken_over(tmp_results: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open_store(tmp_results) as store:
        store.claim(CFG)
        store.conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (dead.pid, CFG.run_id))
        assert store.claim(CFG)
        assert store.run(CFG.run_id)["pid"] != dead.pid  # type: ignore[index]


def test_failed_run_is_retried_but_diverged_is_a_result(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        store.claim(CFG)
        store.finish(CFG, "failed", {}, error="RuntimeError: CUDA out of memory")
        assert store.claim(CFG)
        store.finish(CFG, "diverged", {}, error="loss became nan at epoch 3", diverged_epoch=3)
        assert not store.claim(CFG)
        assert store.run(CFG.run_id)["diverged_epoch"] == 3  # type: ignore[index]


def test_release_drops_interrupted_claims_in_one_call(tmp_results: Path) -> None:
    configs = [RunConfig(model=model_spec("fc", depth="shallow"), epochs=2, seed=s) for s in range(1203)]
    with open_store(tmp_results) as store:
        for cfg in configs:
            store.claim(cfg)
        store.finish(configs[600], "done", {"test_loss": 0.1})
        store.release(*(c.run_id for c in configs))  # more ids than SQLite binds in one statement
        assert [store.status(c.run_id) for c in configs] == [None] * 600 + ["done"] + [None] * 602
        store.release()  # nothing to drop is fine


def test_release_leaves_another_process_claim_and_a_result_alone(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        store.claim(CFG)
        store.conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (os.getppid(), CFG.run_id))  # a live other
        store.release(CFG.run_id)
        assert store.status(CFG.run_id) == "running"
        store.conn.execute("UPDATE runs SET pid = ?, host = 'another-host' WHERE run_id = ?", (os.getpid(), CFG.run_id))
        store.release(CFG.run_id)  # the same pid on another machine sharing the results folder
        assert store.status(CFG.run_id) == "running"
        store.conn.execute("UPDATE runs SET host = ? WHERE run_id = ?", (socket.gethostname(), CFG.run_id))
        store.conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (os.getpid(), CFG.run_id))
        store.finish(CFG, "done", {"test_loss": 0.1})
        store.release(CFG.run_id)
        assert store.status(CFG.run_id) == "done"


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 2000],
)
def test_foreign_or_corrupt_file_is_refused_untouched(tmp_results: Path, content: bytes) -> None:
    tmp_results.mkdir()
    path = tmp_results / DB_NAME
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not an aebench results store"):
        open_store(tmp_results)
    assert path.read_bytes() == content


def test_other_sqlite_database_is_refused_untouched(tmp_results: Path) -> None:
    tmp_results.mkdir()
    path = tmp_results / DB_NAME
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an aebench results store"):
        open_store(tmp_results)
    assert path.read_bytes() == before


def test_missing_store_without_create(tmp_results: Path) -> None:
    with pytest.raises(StoreError, match="no results store"):
        open_store(tmp_results, create=False)
    assert not tmp_results.exists()


def test_unwritable_results_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Unwritable, match=f"^--results {blocker / 'results'}: {blocker} is a file, so no folder"):
        open_store(blocker / "results")
    with pytest.raises(Unwritable, match=f"^--results {blocker}: {blocker} is a file, not a folder$"):
        open_store(blocker)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "runs").write_text("x")  # where the checkpoints go
    with pytest.raises(Unwritable, match=f"^--results {tmp_path / 'r'}: {tmp_path / 'r' / 'runs'} is a file"):
        open_store(tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "r"] and not (tmp_path / "r" / DB_NAME).exists()


class _FullDisk:
    """A connection whose COMMIT fails as SQLite's does when the disk is full; everything else is the real one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise exc
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_a_full_disk_rolls_the_write_back_and_says_so(tmp_results: Path) -> None:
    with open_store(tmp_results) as store:
        store.claim(CFG)
        real = store.conn
        store.conn = _FullDisk(real)  # type: ignore[assignment]
        with pytest.raises(NoSpace, match=f"^no space left on device writing {tmp_results / DB_NAME}$"):
            store.finish(CFG, "done", {"test_mse": 0.1}, [{"epoch": 1, "train_loss": 0.2, "test_loss": 0.1,
                                                            "seconds": 1.0, "lr": 1e-3}])  # fmt: skip
        store.conn = real
        assert not real.in_transaction
        assert store.status(CFG.run_id) == "running" and store.epochs(CFG.run_id).empty  # as before the write


def test_heartbeat_renews_this_process_claims_in_one_call(tmp_results: Path) -> None:
    configs = [RunConfig(model=model_spec("fc", depth="shallow"), epochs=2, seed=s) for s in range(3)]
    old = "2000-01-01T00:00:00+00:00"
    with open_store(tmp_results) as store:
        for cfg in configs:
            store.claim(cfg)
        store.conn.execute("UPDATE runs SET heartbeat_at = ?", (old,))
        store.conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (os.getppid(), configs[2].run_id))
        store.heartbeat(*(c.run_id for c in configs))
        beats = dict(store.conn.execute("SELECT run_id, heartbeat_at FROM runs"))
    assert beats[configs[0].run_id] > old and beats[configs[1].run_id] > old
    assert beats[configs[2].run_id] == old  # another process's claim is its own to renew
