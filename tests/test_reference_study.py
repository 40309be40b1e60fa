"""The reference study checked in under results/reference: every config of `--preset reference`, 3 done seeds each,
trained as the issue asks, with its provenance, and small enough to keep in git."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.grid.presets import get_preset

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def test_the_study_holds_every_reference_config_with_three_done_seeds() -> None:
    runs = pd.read_csv(REFERENCE / "runs.csv")
    done = runs[runs["status"] == "done"]
    epochs = int(done["epochs"].min())
    assert epochs >= 10 and set(done["epochs"]) == {epochs}
    assert set(done["dataset"]) == {"fashion-mnist"} and done["train_size"].isna().all()  # the full training split
    assert set(done["batch_size"]) == {128} and set(done["lr"]) == {0.001}
    # the preset sets the model; the study trained on every training image, before the validation holdout existed
    settings = GridSpec(base=RunConfig(model=ModelSpec(arch="fc"), epochs=epochs, val_fraction=0.0), seeds=3)
    wanted = get_preset("reference").expand(settings)
    assert len(wanted) == 132 and {c.run_id for c in wanted} <= set(done["run_id"])
    assert done["device_name"].notna().all() and done["git_commit"].notna().all()
    report = (REFERENCE / "report.md").read_text()
    assert "± " in report and "## Environment" in report and "study wall time" in report


def test_the_checked_in_study_is_a_few_megabytes_without_checkpoints() -> None:
    files = [p for p in REFERENCE.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".pt" or p.name.startswith("aebench.db")]
    assert sum(p.stat().st_size for p in files) < 5 * 2**20
