"""Named grids kept in the code: each of the tutorial's exercises, and the reference study that answers them all.

A preset is a union of `GridSpec`s (one product grid cannot say "depths at every latent, activations
at one"), expanded and de-duplicated by run id, so `aebench compare --preset exercise-5` is the same
cells on every machine and a rerun resumes it. The training settings a user gives (`--epochs`,
`--seeds`, `--datasets`, `--train-size`, ...) apply to every cell; a preset fixes only the axes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from aebench.config import GridSpec, RunConfig
from aebench.errors import BadInput

SEED_MODELS = ("seed-ae", "seed-simple", "seed-deep", "seed-conv", "seed-deepconv", "seed-flexible")
DEPTHS_ = ("shallow", "medium", "deep")


@dataclass(frozen=True)
class Preset:
    """A named grid: what it answers, and its parts (each a `GridSpec` of axes only)."""

    name: str
    question: str
    parts: Callable[[], Sequence[GridSpec]]  # built when asked for: no work at import

    def expand(self, settings: GridSpec) -> list[RunConfig]:
        """Every cell of every part with the training settings of `settings` (its base config, datasets,
        seeds, losses, learning rates and batch sizes; its model axes are not read), each config once, in order."""
        cells: dict[str, RunConfig] = {}
        for part in self.parts():
            grid = replace(part, base=settings.base, datasets=settings.datasets, seeds=settings.seeds,
                           losses=settings.losses, lrs=settings.lrs, batch_sizes=settings.batch_sizes,
                           equal_steps=part.equal_steps or settings.equal_steps)  # fmt: skip
            for cfg in grid.expand():
                cells.setdefault(cfg.run_id, cfg)
        return list(cells.values())


def _reference() -> list[GridSpec]:
    return [
        *_exercise_1(latents=(2, 4, 8, 16, 32, 64, 128)),  # Exercises 1 and 5: every depth at every latent size
        GridSpec(archs=("conv",), depths=("medium",), latent_dims=(2, 8, 16, 32, 64, 128),
                 downsample=("pool", "stride")),  # fmt: skip
        GridSpec(archs=("conv",), depths=("medium",), latent_dims=(32,), downsample=("pool", "stride"),
                 upsample=("transpose", "bilinear")),  # fmt: skip
        *_part_3(equal_steps=False),  # the 10-epoch study as it was run: pretraining on top of the epochs
        GridSpec(archs=SEED_MODELS),
    ]


def _exercise_1(latents: tuple[int, ...] = (2, 16, 32, 128)) -> list[GridSpec]:
    return [
        GridSpec(archs=("fc",), depths=DEPTHS_, latent_dims=latents),
        GridSpec(archs=("fc",), depths=("medium",), latent_dims=(32,), activations=("relu", "leakyrelu", "elu")),
    ]


def _part_3(equal_steps: bool = True) -> list[GridSpec]:
    """Plain against greedy pretraining, and (`equal_steps`) greedy again inside the plain run's step budget:
    pretraining on top of the epochs is more training as well as pretraining."""
    deep = GridSpec(archs=("fc",), depths=("deep",), latent_dims=(32,), pretrain=("none", "greedy"))
    return [deep, replace(deep, pretrain=("greedy",), equal_steps=True)] if equal_steps else [deep]


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("exercise-1", "How does the latent size affect reconstruction; which activation?", _exercise_1),
        Preset("exercise-2", "The 2-d latent space: codes by class, decoded plane, arithmetic",
               lambda: [GridSpec(archs=("fc", "conv"), latent_dims=(2,))]),  # fmt: skip
        Preset("exercise-3", "Interpolation between two codes (drawn from 2-d and 32-d latents)",
               lambda: [GridSpec(archs=("fc",), latent_dims=(2, 32))]),  # fmt: skip
        Preset("exercise-4", "Stride or pooling: quality, parameters, FLOPs",
               lambda: [GridSpec(archs=("conv",), latent_dims=(2, 16, 32, 128), downsample=("pool", "stride"))]),
        Preset("exercise-5", "Is deeper better at latent 32?",
               lambda: [GridSpec(archs=("fc",), depths=DEPTHS_, latent_dims=(32,))]),  # fmt: skip
        Preset("part-3", "Does greedy layer-wise pretraining help a deep fc autoencoder?", _part_3),
        Preset("seed-models", "The tutorial's six models as it defines them", lambda: [GridSpec(archs=SEED_MODELS)]),
        Preset("reference", "Everything above at once: the reference study (results/reference)", _reference),
        Preset("reference-ci", "Three reference configs for a CI run to judge against results/reference",
               lambda: [GridSpec(archs=("fc",), depths=("shallow", "medium"), latent_dims=(32,)),
                        GridSpec(archs=("conv",), depths=("medium",), latent_dims=(32,), downsample=("pool",))]),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise BadInput(f"--preset: unknown preset {name!r}; choose from: {', '.join(PRESETS)}") from None


def listing() -> list[dict[str, object]]:
    """Each preset's name, question and number of configs (a seed each): what `--list-presets` shows."""
    return [{"name": p.name, "question": p.question, "configs": len(p.expand(GridSpec()))} for p in PRESETS.values()]


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
