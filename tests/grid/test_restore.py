"""A published study's folder back into a store: its runs as they were (ids verified, times kept), or refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.grid.store import DB_NAME, open_store

runner = CliRunner()
STUDY = Path(__file__).resolve().parents[2] / "results" / "reference"


def test_the_reference_study_goes_back_into_a_store_as_it_was(tmp_path: Path) -> None:
    res = runner.invoke(app, ["import", str(STUDY), "--results", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(STUDY / "runs.csv", dtype={"run_id": str}).set_index("run_id")
    assert json.loads(res.stdout) == {"written": len(csv), "kept": 0, "epochs": len(pd.read_csv(STUDY / "epochs.csv"))}
    with open_store(tmp_path, create=False) as store:
        runs = store.runs().set_index("run_id")
    assert set(runs.index) == set(csv.index)
    for column in ("test_mse", "finished_at", "started_at", "device_name", "git_commit", "val_fraction"):
        assert runs[column].tolist() == csv.loc[runs.index, column].tolist(), column  # the run's own record
    again = runner.invoke(app, ["import", str(STUDY), "--results", str(tmp_path), "--json"])
    assert json.loads(again.stdout)["kept"] == len(csv)  # what the store holds is left as it was


def test_a_row_whose_config_is_not_its_id_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    runs = pd.read_csv(STUDY / "runs.csv", dtype={"run_id": str})
    runs.loc[3, "epochs"] = 11  # an edit: this row's config no longer hashes to its run id
    runs.to_csv(folder / "runs.csv", index=False)
    res = runner.invoke(app, ["import", str(folder), "--results", str(tmp_path / "results")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "runs.csv line 5: its config gives run id" in res.stderr and "nothing imported" in res.stderr
    assert not (tmp_path / "results" / DB_NAME).exists()
    missing = runner.invoke(app, ["import", str(tmp_path / "nowhere"), "--results", str(tmp_path / "results")])
    assert missing.exit_code == 2 and "no runs.csv there" in missing.stderr
