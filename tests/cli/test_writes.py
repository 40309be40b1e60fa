"""Where aebench writes: a place it cannot write is refused in one line, exit 2, before any work; a full disk
is one line too, with the finished runs intact and the rest trained by the next call."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aebench.bench import run as bench_run
from aebench.cli.app import app
from aebench.errors import NoSpace
from aebench.grid import cells
from aebench.grid.store import DB_NAME, Store, open_store
from aebench.report import build
from aebench.train import checkpoint

runner = CliRunner()
QUICK = ["--epochs", "1", "--train-size", "500", "--device", "cpu"]
GRID = ["compare", "--archs", "fc", "--depths", "shallow", "--latent-dims", "2,4,8", *QUICK, "--no-baselines"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run (missing parent folders are made, as for any results folder), for `report` to read."""
    results = tmp_path_factory.mktemp("writes") / "made" / "for" / "it"
    with pytest.MonkeyPatch.context() as mp:  # as the autouse fixture does for each test
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("AEBENCH_DATA", raising=False)
        res = runner.invoke(app, ["train", "--arch", "seed-conv", *QUICK, "--results", str(results)])
    assert res.exit_code == 0, res.output
    return results


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything past the checks fails the test: training, benching, drawing."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("work began before the write location was checked")

    monkeypatch.setattr(cells, "run_one", refuse)
    monkeypatch.setattr(bench_run, "run_bench", refuse)
    monkeypatch.setattr(build, "save_figure", refuse)
    monkeypatch.setattr(build, "write_text", refuse)


COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "train --results": lambda where, _store: ["train", "--arch", "seed-conv", *QUICK, "--results", str(where)],
    "compare --results": lambda where, _store: ["compare", "--archs", "seed-conv", *QUICK, "--results", str(where)],
    "report --out": lambda where, store: ["report", "--results", str(store), "--out", str(where)],
    "bench --results": lambda where, _store: ["bench", "--models", "seed-conv", *QUICK, "--results", str(where)],
}
# each case: how to make the place, which part of the message names the trouble
CASES = {
    "a file": lambda tmp: _file(tmp / "taken"),
    "under a file": lambda tmp: _file(tmp / "taken") / "inside",
    "a read-only folder": lambda tmp: _read_only(tmp / "locked"),
}


def _file(path: Path) -> Path:
    path.write_text("someone's file\n")
    return path


def _read_only(path: Path) -> Path:
    path.mkdir()
    path.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)  # 0o555
    if os.access(path, os.W_OK):
        path.chmod(0o755)
        pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a 0o555 folder is writable, nothing to refuse")
    return path


def _expected(case: str, where: Path, command: str) -> str:
    flag = "--out" if command == "report --out" else "--results"
    if case == "a file":
        # bench writes under <results>/benchmarks: the results path itself is the file in its way
        tail = "is a file, so no folder can be made under it" if command == "bench --results" else "is a file, not a"
        return f"aebench: error: {flag} {where}: {where} {tail}"
    if case == "under a file":
        return f"aebench: error: {flag} {where}: {where.parent} is a file, so no folder can be made under it"
    return f"aebench: error: {flag} {where}: no permission to write to the folder {where}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_place_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, command: str, case: str
) -> None:
    where = CASES[case](tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    _no_work(monkeypatch)
    res = runner.invoke(app, COMMANDS[command](where, store))
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(_expected(case, where, command)), res.stderr
    assert "Traceback" not in res.output and not res.stdout
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written
    if case != "a read-only folder":
        assert (tmp_path / "taken").read_text() == "someone's file\n"


def test_the_folders_under_results_are_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_work(monkeypatch)
    results = tmp_path / "results"
    results.mkdir()
    (results / "runs").write_text("not the checkpoints' folder\n")
    res = runner.invoke(app, ["compare", "--archs", "seed-conv", *QUICK, "--results", str(results)])
    assert res.exit_code == 2 and res.stderr.strip() == (
        f"aebench: error: --results {results}: {results / 'runs'} is a file, not a folder"
    ), res.output
    (results / "runs").unlink()
    (results / "mlartifacts").write_text("not MLflow's artifacts\n")
    pytest.importorskip("mlflow", reason="--mlflow needs MLflow: pip install 'aebench[mlflow]'")
    res = runner.invoke(app, ["compare", "--archs", "seed-conv", *QUICK, "--mlflow", "--results", str(results)])
    assert res.exit_code == 2 and res.stderr.strip() == (
        f"aebench: error: --results {results}: {results / 'mlartifacts'} is a file, not a folder"
    ), res.output
    assert sorted(p.name for p in results.iterdir()) == ["mlartifacts"]


def test_a_report_makes_missing_folders(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "report"
    res = runner.invoke(app, ["report", "--results", str(store), "--out", str(out), "--only", "throughput"])
    assert res.exit_code == 0, res.output
    assert (out / "runs.csv").is_file() and (out / "index.html").is_file()


def test_a_full_disk_mid_grid_is_one_line_and_the_next_call_trains_the_rest(
    tmp_results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = checkpoint.atomic_write
    checkpoints: list[Path] = []

    def full_at_the_second_checkpoint(path: Path, write: Callable[..., None]) -> None:
        if path.name == checkpoint.CHECKPOINT:
            checkpoints.append(path)
            if len(checkpoints) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", full_at_the_second_checkpoint)
    res = runner.invoke(app, [*GRID, "--results", str(tmp_results)])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("aebench: error:")]
    assert errors == [f"aebench: error: no space left on device writing {checkpoints[1]}"], res.stderr
    assert "Traceback" not in res.output
    with open_store(tmp_results, create=False) as store:
        statuses = dict(zip(store.runs()["run_id"], store.runs()["status"], strict=True))
    assert list(statuses.values()) == ["done"]  # the finished run, intact; the one in flight left no claim

    monkeypatch.setattr(checkpoint, "atomic_write", real)  # space again
    again = runner.invoke(app, [*GRID, "--results", str(tmp_results), "--json"])
    assert again.exit_code == 0, again.output
    runs = json.loads(again.stdout)["runs"]
    assert [(r["status"], r["skipped"]) for r in runs] == [("done", True), ("done", False), ("done", False)]
    assert all((tmp_results / r["checkpoint"]).is_file() for r in runs)


def test_a_full_disk_while_the_report_is_written_is_one_line(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the real atomic_write, failing as a full disk makes it fail
    out = tmp_path / "report"
    res = runner.invoke(app, ["report", "--results", str(store), "--out", str(out), "--only", "throughput"])
    assert res.exit_code == 1, res.output
    assert res.stderr == f"aebench: error: no space left on device writing {out / 'runs.csv'}\n"
    assert list(out.iterdir()) == []  # no half-written file, not even a temporary one


def test_a_full_disk_while_the_bench_json_is_saved_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NoSpace, match=r"^no space left on device writing .*/benchmarks/aebench-bench-\d+T\d+\.json$"):
        bench_run.save_bench({"rows": []}, tmp_path)
    assert list((tmp_path / "benchmarks").iterdir()) == []


def test_an_interrupted_grid_counts_every_cell_in_its_title(tmp_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = runner.invoke(app, [*GRID[:5], "--latent-dims", "2", *QUICK, "--results", str(tmp_results)])
    assert first.exit_code == 0, first.output
    real = Store.claim
    claims = 0

    def interrupt_the_second_claim(self: Store, cfg: Any) -> bool:
        nonlocal claims
        claims += 1
        if claims == 2:
            raise KeyboardInterrupt
        return real(self, cfg)

    monkeypatch.setattr(Store, "claim", interrupt_the_second_claim)
    res = runner.invoke(app, [*GRID, "--results", str(tmp_results)], env={"COLUMNS": "100"})
    assert res.exit_code == 130, res.output
    assert "grid: 3 cells, 2 done (1 from earlier), 1 not run" in res.stdout
    assert "interrupted: 2 of 3 runs passed (2 done and stored)" in res.stderr
    assert (tmp_results / DB_NAME).is_file()


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="as a user the test above refuses for real")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_folder_is_refused_in_a_process_without_roots_override(
    tmp_path: Path, store: Path, command: str
) -> None:
    """As root (CI runs so) a 0o555 folder is writable; the real `aebench` process runs here without the
    capability that lets root write anywhere (CAP_DAC_OVERRIDE), as any user would, and must refuse."""
    where = tmp_path / "locked"
    where.mkdir()
    where.chmod(0o555)
    assert SETPRIV is not None
    drop = "-dac_override,-dac_read_search"
    res = subprocess.run(
        [SETPRIV, f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-m", "aebench",
         *COMMANDS[command](where, store)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(_expected("a read-only folder", where, command)), res.stderr
    assert not res.stdout and not list(where.iterdir())  # nothing written
