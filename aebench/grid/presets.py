"""Named grids shipped with aebench: each of the tutorial's exercises, and the reference study that answers them all.

Each is a grid file in `aebench/grids/` (`aebench.grid.gridfile`: a union of products, since one product cannot
say "depths at every latent, activations at one"), read by the same code as a user's `--grid FILE`, so `aebench
compare --preset exercise-5` is the same cells on every machine and a rerun resumes it. A preset fixes only the
axes; the training settings a user gives (`--epochs`, `--seeds`, `--datasets`, `--train-size`, ...) apply to
every cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from aebench.config import GridSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid import gridfile

# In the order `--list-presets` shows them; each is `aebench/grids/<name>.toml`.
NAMES = ("exercise-1", "exercise-2", "exercise-3", "exercise-4", "exercise-5", "part-3", "seed-models", "reference",
         "reference-ci")  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A named grid: what it answers, and its grid file."""

    name: str
    grid: gridfile.GridFile

    @property
    def question(self) -> str:
        return self.grid.question

    def expand(self, settings: GridSpec) -> list[RunConfig]:
        """Every cell with the training settings of `settings` (its model axes are not read), each config once."""
        return gridfile.cells(self.grid, settings)


def get_preset(name: str) -> Preset:
    if name not in NAMES:
        raise BadInput(f"--preset: unknown preset {name!r}; choose from: {', '.join(NAMES)}")
    text = (resources.files("aebench") / "grids" / f"{name}.toml").read_text()
    return Preset(name, gridfile.parse(text, f"preset {name}"))


def listing() -> list[dict[str, object]]:
    """Each preset's name, question and number of configs (a seed each): what `--list-presets` shows."""
    return [{"name": p.name, "question": p.question, "configs": len(p.expand(GridSpec()))}
            for p in map(get_preset, NAMES)]  # fmt: skip


def cells(name: str | None, grid: GridSpec, axes: Mapping[str, object]) -> GridSpec | list[RunConfig]:
    """What `compare` trains: `grid` itself, or preset `name`'s cells with `grid`'s training settings. An axis
    option (`axes`: flag -> value, None where not given) beside a preset is refused, not silently dropped."""
    if name is None:
        return grid
    given = [flag for flag, value in axes.items() if value is not None]
    if given:
        raise BadInput(f"{given[0]} does not go with --preset {name}: a preset fixes the grid's axes "
                       "(aebench compare --list-presets shows each)")  # fmt: skip
    return get_preset(name).expand(grid)
