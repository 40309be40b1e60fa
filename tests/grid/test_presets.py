"""Named grids: each exercise's cells, the reference study's 44 configs, and the training options on top."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid.presets import NAMES, get_preset

runner = CliRunner()


def test_the_reference_study_is_every_exercise_at_once() -> None:
    cells = get_preset("reference").expand(GridSpec())
    kinds = Counter(
        "fc-depth-latent" if c.model.arch == "fc" and c.model.activation == "relu" and c.model.pretrain == "none"
        else "fc-activation" if c.model.arch == "fc" and c.model.activation != "relu"
        else "fc-greedy" if c.model.arch == "fc"
        else "conv" if c.model.arch == "conv"
        else "seed"
        for c in cells
    )  # fmt: skip
    # 3 depths x 7 latents; leakyrelu and elu beside relu; 2 x 6 latents pool/stride + bilinear at 32 for both
    assert kinds == {"fc-depth-latent": 21, "fc-activation": 2, "fc-greedy": 1, "conv": 14, "seed": 6}
    assert len({c.run_id for c in cells}) == len(cells) == 44
    every = set(NAMES) - {"reference"}  # reference-ci among them: a subset to rerun
    ids = {c.run_id for c in cells}
    for name in every - {"exercise-1", "exercise-2", "exercise-3", "exercise-4"}:  # those use fewer latents
        # the 10-epoch study ran pretraining on top of its epochs only: part-3's equal-steps cell came later
        wanted = {c.run_id for c in get_preset(name).expand(GridSpec()) if not c.equal_steps}
        assert wanted <= ids, name
    assert [c.equal_steps for c in get_preset("part-3").expand(GridSpec())] == [False, False, True]


def test_exercise_5_is_the_depth_grid_and_takes_the_training_options() -> None:
    settings = GridSpec(base=RunConfig(model=ModelSpec(arch="fc"), epochs=3, train_size=500), seeds=2)
    cells = get_preset("exercise-5").expand(settings)
    by_hand = GridSpec(archs=("fc",), depths=("shallow", "medium", "deep"), latent_dims=(32,), base=settings.base,
                       seeds=2).expand()  # fmt: skip
    assert [c.run_id for c in cells] == [c.run_id for c in by_hand]
    assert {(c.epochs, c.train_size) for c in cells} == {(3, 500)} and len(cells) == 6


def test_the_cli_lists_presets_and_refuses_axes_beside_one(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["compare", "--list-presets", "--json"])
    assert listed.exit_code == 0 and {r["name"]: r["configs"] for r in json.loads(listed.stdout)}["reference"] == 44
    both = runner.invoke(app, ["compare", "--preset", "exercise-5", "--depths", "deep", "--results", str(tmp_path)])
    assert both.exit_code == 2 and "--depths does not go with --preset exercise-5" in both.stderr
    assert not any(tmp_path.iterdir())
    plan = runner.invoke(app, ["compare", "--preset", "exercise-4", "--dry-run", "--json", "--results", str(tmp_path)])
    cells = json.loads(plan.stdout)  # 2 x 4 conv cells and PCA at each of their 4 code sizes
    assert plan.exit_code == 0 and len(cells) == 12
    assert sorted(c["latent_dim"] for c in cells if c["arch"] == "pca") == [2, 16, 32, 128]
    with pytest.raises(BadInput, match="unknown preset 'nope'; choose from: exercise-1"):
        get_preset("nope")


def test_the_reference_preset_is_still_the_studys_44_configs() -> None:
    """The presets became grid files: `--preset reference` gives the cells the study ran, written out here as the
    Python grids that defined them before (the checked-in study's run ids depend on it)."""
    seed = ("seed-ae", "seed-simple", "seed-deep", "seed-conv", "seed-deepconv", "seed-flexible")
    before = [
        GridSpec(archs=("fc",), depths=("shallow", "medium", "deep"), latent_dims=(2, 4, 8, 16, 32, 64, 128)),
        GridSpec(archs=("fc",), depths=("medium",), latent_dims=(32,), activations=("relu", "leakyrelu", "elu")),
        GridSpec(archs=("conv",), depths=("medium",), latent_dims=(2, 8, 16, 32, 64, 128),
                 downsample=("pool", "stride")),
        GridSpec(archs=("conv",), depths=("medium",), latent_dims=(32,), downsample=("pool", "stride"),
                 upsample=("transpose", "bilinear")),
        GridSpec(archs=("fc",), depths=("deep",), latent_dims=(32,), pretrain=("none", "greedy")),
        GridSpec(archs=seed),
    ]  # fmt: skip
    ids = list(dict.fromkeys(c.run_id for part in before for c in part.expand()))
    assert [c.run_id for c in get_preset("reference").expand(GridSpec())] == ids and len(ids) == 44
