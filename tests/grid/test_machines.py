"""Speed is per machine: a grid resumed on another device says what it skipped, and `--here` measures it too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from aebench import api
from aebench.cli.app import app
from aebench.config import RunConfig, model_spec
from aebench.grid.store import DB_NAME, open_store
from aebench.train.device import device_name, resolve_device

runner = CliRunner()
OTHER = "NVIDIA H200"


def _trained_elsewhere(results: Path, cfg: RunConfig) -> None:
    """The run as another machine would have stored it: same config, same result, its own device."""
    api.compare([cfg], results, device="cpu", baselines=False)
    with sqlite3.connect(results / DB_NAME) as db:
        db.execute("UPDATE runs SET device_name = ?, device = 'cuda' WHERE run_id = ?", (OTHER, cfg.run_id))


def test_cells_done_on_another_device_are_counted_and_here_trains_them_beside(tmp_path: Path) -> None:
    results = tmp_path / "results"
    cfg = RunConfig(model=model_spec("seed-ae"), epochs=1, train_size=256)
    _trained_elsewhere(results, cfg)
    this = device_name(resolve_device("cpu"))

    skipped = api.compare([cfg], results, device="cpu", baselines=False)
    assert skipped.elsewhere == {cfg.run_id: OTHER} and skipped.here == this
    assert [o.skipped for o in skipped.outcomes] == [True]

    res = runner.invoke(app, ["compare", "--archs", "seed-ae", "--epochs", "1", "--train-size", "256",
                              "--device", "cpu", "--no-baselines", "--results", str(results)])  # fmt: skip
    assert res.exit_code == 0 and f"1 cells skipped: done on another device ({OTHER})" in res.stderr

    here = api.compare([cfg], results, device="cpu", here=True, baselines=False)
    assert here.elsewhere == {} and [o.skipped for o in here.outcomes] == [False]
    with open_store(results, create=False) as store:
        runs = store.runs()
    assert sorted(runs["device_name"]) == sorted([OTHER, this])  # beside, not replacing
    assert set(runs["machine"].fillna("")) == {"", this}
    assert here.outcomes[0].config.label() == f"seed-ae n=256 1ep @{this} seed0"
