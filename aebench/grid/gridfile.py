"""Grid files: a team's grid kept in its repository as TOML, and the built-in presets, read by the same code.

Lists of values form a product; a list of `[[grid]]` blocks forms a union (benchopt's convention), each block
a product of its own keys over the keys the file sets at its top. Every key is a `compare` option, spelled as
its flag without the dashes (`latent_dims`, `val_fraction`); a list may be one value. The file's keys fix
those settings; the command line gives the rest, and one given in both places is refused, not overridden.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aebench import config
from aebench.config import GridSpec, RunConfig
from aebench.errors import BadInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  (3.10: the same parser, from PyPI)
    import tomli as tomllib

# grid key -> (GridSpec field, the allowed choices or the number parser); the axes of the grid
_CHOICES: dict[str, tuple[str, ...]] = {
    "depths": config.DEPTHS, "downsample": config.DOWNSAMPLES, "upsample": config.UPSAMPLES,
    "activations": config.ACTIVATIONS, "outputs": config.OUTPUTS, "pretrain": config.PRETRAINS,
    "losses": config.LOSSES,
}  # fmt: skip
_INT_LISTS = ("latent_dims", "batch_sizes")
_FLOAT_LISTS = ("lrs",)
_TEXT_LISTS = ("archs", "datasets")
# keys that set one value: the base run's settings, the model options fixed wherever they apply, the grid's own
_RUN = ("epochs", "seed", "train_size", "val_fraction", "patience", "min_delta", "weight_decay", "grad_clip",
        "lr_schedule", "precision", "step")  # fmt: skip
_FIXED = ("hidden", "batchnorm", "dropout", "pretrain_epochs")
_GRID = ("seeds", "equal_steps")
_OPTION = "option"  # a user model's own options as axes: option = { width = [32, 64] }
KEYS = (*_TEXT_LISTS, *_CHOICES, *_INT_LISTS, *_FLOAT_LISTS, *_RUN, *_FIXED, *_GRID, _OPTION)


@dataclass(frozen=True)
class GridFile:
    """A parsed grid file: what it answers, and its blocks (each a mapping of keys to values, top keys merged in)."""

    path: str
    question: str = ""
    blocks: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def keys(self) -> set[str]:
        return {k for block in self.blocks for k in block}


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def parse(text: str, path: str) -> GridFile:
    """The grid file's blocks, every key known and every value of the right kind, or one line naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not TOML ({exc})") from None
    question = data.pop("question", "")
    blocks = data.pop("grid", [{}])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BadInput(f"{path}: `grid` must be a list of [[grid]] blocks")
    merged = [{**data, **block} for block in blocks]
    for block in merged:
        unknown = sorted(set(block) - set(KEYS))
        if unknown:
            raise BadInput(f"{path}: unknown key {unknown[0]!r}; the keys are compare's options: {', '.join(KEYS)}")
        if "archs" not in block:
            raise BadInput(f"{path}: a grid block without `archs`; say which models it trains")
    return GridFile(path, str(question), tuple(merged))


def read(path: str | Path) -> GridFile:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise BadInput(f"--grid {path}: cannot read it ({exc.strerror or exc})") from None
    return parse(text, str(path))


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _text(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values)


def spec(block: Mapping[str, Any], settings: GridSpec, path: str) -> GridSpec:
    """One block as a `GridSpec` over `settings` (the command line's), its values checked as the flags check them."""
    try:
        axes: dict[str, Any] = {}
        for key, allowed in _CHOICES.items():
            if key in block:
                axes[key] = config.parse_choices(_flag(key), _text(_list(block[key])), allowed)
        for key in _INT_LISTS:
            if key in block:
                axes[key] = config.parse_ints(_flag(key), _text(_list(block[key])))
        for key in _FLOAT_LISTS:
            if key in block:
                axes[key] = config.parse_floats(_flag(key), _text(_list(block[key])))
        for key in _TEXT_LISTS:
            if key in block:
                axes[key] = tuple(dict.fromkeys(config.split_list(_flag(key), _text(_list(block[key])))))
        base = replace(settings.base, **{k: block[k] for k in _RUN if k in block})
        fixed = {**settings.fixed, **{k: block[k] for k in _FIXED if k in block}}
        if "hidden" in block:
            fixed["hidden"] = tuple(int(h) for h in _list(block["hidden"]))
        if _OPTION in block:
            if not isinstance(block[_OPTION], dict):
                raise BadInput("`option` is a table of your model's options, e.g. option = { width = [32, 64] }")
            given = [f"{k}={_text(_list(v))}" for k, v in block[_OPTION].items()]
            axes["options"] = config.option_axes(axes.get("archs", settings.archs), given)
        return replace(
            settings, **axes, base=base, fixed=fixed, seeds=int(block.get("seeds", settings.seeds)),
            equal_steps=bool(block.get("equal_steps", settings.equal_steps)),
        )  # fmt: skip
    except BadInput as exc:
        raise BadInput(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{path}: a value of the wrong kind ({exc})") from None


def cells(grid: GridFile, settings: GridSpec, given: Iterable[str] = ()) -> list[RunConfig]:
    """Every cell of the file's union, each config once, in order, over the command line's `settings`.

    `given` names the grid keys the command line set (its flags that differ from their defaults): one the file
    sets too is refused, since neither place would say which of the two a run used."""
    both = sorted(set(given) & grid.keys())
    if both:
        raise BadInput(f"{_flag(both[0])} is set by {grid.path} too; set it in one place")
    out: dict[str, RunConfig] = {}
    for block in grid.blocks:
        one = spec(block, settings, grid.path)
        try:
            expanded = one.expand()
        except BadInput as exc:  # an axis the block's archs do not take, a BCE cell without a sigmoid
            raise BadInput(f"{grid.path}: {exc}") from None
        for cfg in expanded:
            out.setdefault(cfg.run_id, cfg)
    return list(out.values())
