"""A grid file: products and unions of compare's options, refused in one line where wrong, the same cells as flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid import gridfile

runner = CliRunner()

GRID = """
question = "Is a conv model better than an fc one at every size?"
epochs = 3
latent_dims = [2, 16]

[[grid]]
archs = ["fc"]
depths = ["shallow", "deep"]

[[grid]]
archs = "conv"
downsample = ["pool", "stride"]
latent_dims = 16
"""


def test_a_product_and_a_union_give_exactly_their_cells() -> None:
    grid = gridfile.parse(GRID, "mine.toml")
    cells = gridfile.cells(grid, GridSpec())
    base = RunConfig(model=ModelSpec(arch="fc"), epochs=3)
    by_hand = [
        *GridSpec(archs=("fc",), depths=("shallow", "deep"), latent_dims=(2, 16), base=base).expand(),
        *GridSpec(archs=("conv",), downsample=("pool", "stride"), latent_dims=(16,), base=base).expand(),
    ]
    assert [c.run_id for c in cells] == [c.run_id for c in by_hand] and len(cells) == 6
    assert {c.epochs for c in cells} == {3} and grid.question.startswith("Is a conv model")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("archs = ['fc']\nlatent_dim = [2]", "mine.toml: unknown key 'latent_dim'; the keys are compare's options"),
        ("archs = ['fc']\ndepths = ['huge']", "mine.toml: --depths: unknown value 'huge'; choose from: shallow"),
        ("archs = ['fc']\nlatent_dims = [0]", "mine.toml: --latent-dims: 0 is not allowed"),
        ("archs = ['fc'\n", "mine.toml: not TOML"),
        ("depths = ['deep']", "mine.toml: a grid block without `archs`"),
        ("archs = ['fc']\ndownsample = ['pool']", "mine.toml: --downsample does not apply to arch fc"),
    ],
)
def test_a_wrong_grid_file_is_one_line(text: str, message: str) -> None:
    with pytest.raises(BadInput, match="^" + re.escape(message)):
        gridfile.cells(gridfile.parse(text, "mine.toml"), GridSpec())


def test_compare_trains_a_grid_file_and_refuses_an_option_set_twice(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("archs = ['fc']\ndepths = ['shallow']\nlatent_dims = [2, 4]\nepochs = 1\ntrain_size = 600\n")
    results = tmp_path / "results"
    plan = runner.invoke(app, ["compare", "--grid", str(path), "--dry-run", "--json", "--results", str(results)])
    assert plan.exit_code == 0, plan.output
    assert [(c["arch"], c["latent_dim"]) for c in json.loads(plan.stdout)] == [("fc", 2), ("fc", 4), ("pca", 2),
                                                                                ("pca", 4)]  # fmt: skip
    twice = runner.invoke(app, ["compare", "--grid", str(path), "--epochs", "5", "--results", str(results)])
    assert twice.exit_code == 2 and f"--epochs is set by {path} too; set it in one place" in twice.stderr
    both = runner.invoke(app, ["compare", "--grid", str(path), "--preset", "exercise-5", "--results", str(results)])
    assert both.exit_code == 2 and "--grid and --preset both given" in both.stderr
    missing = runner.invoke(app, ["compare", "--grid", str(tmp_path / "nope.toml"), "--results", str(results)])
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr
    assert not results.exists()  # nothing written by a plan or a refusal
    trained = runner.invoke(app, ["compare", "--grid", str(path), "--device", "cpu", "--no-baselines", "--json",
                                  "--results", str(results)])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert [r["status"] for r in json.loads(trained.stdout)["runs"]] == ["done", "done"]


def test_the_readmes_grid_file_reads_as_it_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    part = readme[readme.index("**Grid files**") : readme.index("`--dry-run` lists its cells")]
    text = "\n".join(line[4:] for line in part.splitlines() if line.startswith("    ") or not line.strip())
    cells = gridfile.cells(gridfile.parse(text, "README.md"), GridSpec())
    assert len(cells) == (2 + 2) * 3 * 3  # fc 2 depths and conv 2 downsamplings, 3 latent sizes, 3 seeds
    assert {c.epochs for c in cells} == {20} and {c.model.arch for c in cells} == {"fc", "conv"}
