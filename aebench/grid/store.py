"""The results store: one SQLite file, `<results>/aebench.db`, in WAL mode.

Table `runs` has one row per run_id with the config axes and the metrics as columns;
table `epochs` the per-epoch curves. A run is claimed (status `running`) in a
transaction before it is trained and written in one transaction when it ends, so a
crash never leaves half a result and two processes never train the same cell.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.columns import COLUMNS, EPOCH_COLUMNS, MEASURED, of_kind
from aebench.config import RunConfig, earlier_values
from aebench.errors import StoreError, no_space
from aebench.train.checkpoint import check_writable

SCHEMA_VERSION = 5
DB_NAME = "aebench.db"
# Statements that take a store from version N to N + 1; a backup is taken before any of them.
MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE runs ADD COLUMN heartbeat_at TEXT"],
    2: [
        "ALTER TABLE runs ADD COLUMN precision TEXT",
        "UPDATE runs SET precision = 'fp32'",
        "ALTER TABLE runs ADD COLUMN infer_samples_per_s_min REAL",
        "ALTER TABLE runs ADD COLUMN infer_samples_per_s_max REAL",
        "ALTER TABLE runs ADD COLUMN stack_size INTEGER",
    ],
    3: [
        "ALTER TABLE runs ADD COLUMN cuda_graph INTEGER",
        "UPDATE runs SET cuda_graph = 0 WHERE status = 'done'",  # no earlier version used CUDA graphs
    ],
    # Speed as one model alone in timed windows, with the engine path; stacks' own figures. Runs stored
    # before keep their epoch-timer speeds, told apart by a NULL `engine_step`.
    4: [
        "ALTER TABLE runs ADD COLUMN step TEXT",
        "UPDATE runs SET step = 'auto'",
        "ALTER TABLE runs ADD COLUMN timed_steps INTEGER",
        "ALTER TABLE runs ADD COLUMN engine_step TEXT",
        "ALTER TABLE runs ADD COLUMN onednn INTEGER",
        "ALTER TABLE runs ADD COLUMN stack_samples_per_s REAL",
        "ALTER TABLE runs ADD COLUMN stack_epoch_seconds REAL",
        "ALTER TABLE runs ADD COLUMN machine TEXT",
        "ALTER TABLE runs ADD COLUMN flush_denormal INTEGER",
    ],
}
# Since schema 5, a column `aebench.columns` declares is added when a store without it is opened
# (`_add_missing_columns`): runs stored before read NULL there (not recorded, never guessed). A migration is
# only for what an addition cannot say (a value every earlier run had).
# A claim from another host whose process has not reported for this long is taken over.
STALE_AFTER_S = 600.0
HEARTBEAT_EVERY_S = 30.0
STATUSES = ("running", "done", "failed", "diverged")
# A diverged run is a result (that config diverges); a failed one (say, out of memory) is retried.
FINISHED = ("done", "diverged")

# The store's own bookkeeping of a run, beside its config and what it measured (`aebench.columns`).
RECORD_COLUMNS = tuple(of_kind("record"))


def _schema() -> str:
    cols = [f"{c.name} {c.sql}" for c in COLUMNS.values()]
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    return f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ({statuses})),
        config_json TEXT NOT NULL,
        {", ".join(cols)}
    );
    CREATE TABLE epochs (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        {", ".join(f"{name} {sql}" for name, sql in EPOCH_COLUMNS.items())},
        PRIMARY KEY (run_id, epoch)
    );
    """


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add the columns `aebench.columns` declares that the store's tables lack (as sqlite-utils'
    `add_missing_columns` does): a new metric or axis needs no hand-written migration, and an older run reads
    NULL there. Only additions: a store is never rewritten."""
    wanted = {"runs": {c.name: c.sql for c in COLUMNS.values()}, "epochs": EPOCH_COLUMNS}
    earlier = earlier_values()
    for table, columns in wanted.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, sql in columns.items():
            if name in have:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql}")
            except sqlite3.OperationalError as exc:  # another process opening the store added it first
                if "duplicate column name" not in str(exc):
                    raise
                continue
            if table == "runs" and earlier.get(name) is not None:  # a setting the stored runs had, not a NULL
                conn.execute(f"UPDATE runs SET {name} = ? WHERE {name} IS NULL", (earlier[name],))


def _chunked(run_ids: Sequence[str], size: int = 500) -> Iterator[tuple[str, Sequence[str]]]:
    """`run_ids` in pieces SQLite can bind in one statement, each with its `?, ?, ...` placeholders."""
    for start in range(0, len(run_ids), size):
        chunk = run_ids[start : start + size]
        yield ", ".join("?" for _ in chunk), chunk


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A connection to one results store; use `open_store` to get one."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front, so a check-then-write is atomic. A full disk rolls
        the transaction back (the store keeps what it had) and raises `NoSpace` naming the store."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            full = no_space(exc, self.path)
            if full is not None and full is not exc:
                raise full from None
            raise

    # ---- claiming and recording runs ----

    def status(self, run_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def claim(self, config: RunConfig) -> bool:
        """Mark the run `running` for this process; False if it is finished or a live process has it."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, host, pid, heartbeat_at FROM runs WHERE run_id = ?", (config.run_id,)
            ).fetchone()
            if row is not None:
                status, host, pid, heartbeat = row
                if status in FINISHED:
                    return False
                if status == "running" and not self._stale(host, pid, heartbeat):
                    return False
                db.execute("DELETE FROM runs WHERE run_id = ?", (config.run_id,))
            self._insert(
                db, config, "running", {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat_at": _now()}
            )
        return True

    @staticmethod
    def _stale(host: str | None, pid: int | None, heartbeat: str | None) -> bool:
        """A claim is stale when its process is gone: checked directly on this host, and on
        another host (a shared results folder) by a heartbeat older than STALE_AFTER_S."""
        if host == socket.gethostname():
            return pid is None or not _pid_alive(int(pid))
        if heartbeat is None:
            return False
        age = datetime.now(timezone.utc) - datetime.fromisoformat(heartbeat)
        return age.total_seconds() > STALE_AFTER_S

    def heartbeat(self, *run_ids: str) -> None:
        """Say this process is still training `run_ids` (see `_stale`), in one transaction."""
        with self.transaction() as db:
            now = _now()
            for marks, chunk in _chunked(run_ids):
                db.execute(
                    f"UPDATE runs SET heartbeat_at = ? WHERE status = 'running' AND pid = ? AND run_id IN ({marks})",
                    (now, os.getpid(), *chunk),
                )

    def _insert(self, db: sqlite3.Connection, config: RunConfig, status: str, values: Mapping[str, Any]) -> None:
        row = {
            "run_id": config.run_id,
            "status": status,
            "config_json": json.dumps(config.to_dict(), sort_keys=True),
            **config.columns(),
            "claimed_at": _now(),
            **values,
        }
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(row.values()))

    def release(self, *run_ids: str) -> None:
        """Drop this process's claims on `run_ids` (an interrupted run is not a result), in one
        transaction; another process's claim, and a finished run, are left alone."""
        with self.transaction() as db:
            for marks, chunk in _chunked(run_ids):
                db.execute(
                    f"DELETE FROM runs WHERE status = 'running' AND host = ? AND pid = ? AND run_id IN ({marks})",
                    (socket.gethostname(), os.getpid(), *chunk),
                )

    def finish(
        self,
        config: RunConfig,
        status: str,
        metrics: Mapping[str, Any],
        epochs: Sequence[Mapping[str, Any]] = (),
        **record: Any,
    ) -> None:
        """Write a run's outcome and its epochs in one transaction."""
        values = {k: v for k, v in metrics.items() if k in MEASURED}
        values.update({k: v for k, v in record.items() if k in RECORD_COLUMNS and v is not None})
        values.setdefault("finished_at", _now())  # given when a run is imported with its own record
        with self.transaction() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (config.run_id,))
            self._insert(db, config, status, values)
            names = ("epoch", *EPOCH_COLUMNS)
            db.executemany(
                f"INSERT INTO epochs (run_id, {', '.join(names)}) VALUES (?, {', '.join('?' for _ in names)})",
                [(config.run_id, *(e.get(n) for n in names)) for e in epochs],
            )

    # ---- reading ----

    def run(self, run_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def runs(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        if run_ids is None:
            return pd.read_sql_query("SELECT * FROM runs ORDER BY claimed_at, run_id", self.conn)
        marks = ", ".join("?" for _ in run_ids)
        df = pd.read_sql_query(f"SELECT * FROM runs WHERE run_id IN ({marks})", self.conn, params=list(run_ids))
        return df.set_index("run_id").reindex(list(run_ids)).reset_index()

    def epochs(self, run_id: str | None = None) -> pd.DataFrame:
        if run_id is None:
            return pd.read_sql_query("SELECT * FROM epochs ORDER BY run_id, epoch", self.conn)
        return pd.read_sql_query("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", self.conn, params=[run_id])


def check_results(results: str | Path) -> Path:
    """Refuse a results folder this process cannot write, or whose `runs/` (the checkpoints) it cannot,
    before any work (`aebench.train.checkpoint.check_writable`); missing folders are made when written."""
    folder = Path(results)
    check_writable(folder, "--results")
    check_writable(folder / "runs", "--results", folder)
    return folder


def _create(path: Path) -> None:
    """Build a new store under a temporary name and link it into place.

    Another process never sees a store without its tables, and when two create one at
    the same moment, the first link wins and the other uses it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        with sqlite3.connect(tmp, isolation_level=None) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_schema())
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("app", "aebench"), ("schema_version", str(SCHEMA_VERSION))],
            )
        conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def open_store(results: str | Path, *, create: bool = True) -> Store:
    """Open (or create) `<results>/aebench.db`; refuse a file that is not an aebench store."""
    folder = Path(results)
    path = folder / DB_NAME
    if not path.exists():
        if not create:
            raise StoreError(f"no results store at {path}; run `aebench compare` or `aebench train` first")
        check_results(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _create(path)
        except (OSError, sqlite3.Error) as exc:
            full = no_space(exc, path)
            if full is not None:
                raise full from None
            raise StoreError(f"--results {folder}: cannot create the store there ({exc})") from None
    elif create:
        check_results(folder)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = FULL")  # a finished run survives power loss, not only a crash
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not an aebench results store or is corrupt ({exc}); it was left untouched"
        ) from None
    if meta.get("app") != "aebench":
        conn.close()
        raise StoreError(f"{path} is not an aebench results store; it was left untouched")
    version = int(meta.get("schema_version", "0")) if str(meta.get("schema_version", "0")).isdigit() else 0
    if version > SCHEMA_VERSION or version < min(MIGRATIONS, default=SCHEMA_VERSION):
        conn.close()
        raise StoreError(
            f"{path} has store schema {version}, this aebench reads {SCHEMA_VERSION}"
            f"{' (upgrade aebench)' if version > SCHEMA_VERSION else ''}; it was left untouched"
        )
    if version < SCHEMA_VERSION:
        _migrate(conn, path, version)
    try:
        _add_missing_columns(conn)
    except sqlite3.OperationalError as exc:  # a read-only store: read what it has
        if "readonly" not in str(exc):
            raise
    conn.execute("PRAGMA foreign_keys = ON")
    return Store(path, conn)


def backup_path(path: Path, version: int) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.name}.schema{version}-{stamp}.bak")


def _migrate(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Back the store up (SQLite's online backup, WAL included), then migrate it in one transaction."""
    backup = backup_path(path, version)
    with sqlite3.connect(backup) as dest:
        conn.backup(dest)
    dest.close()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for v in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[v]:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
