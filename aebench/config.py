"""Frozen run configs, their validation, their ids, and grid expansion.

One `RunConfig` per run; its `run_id` is a hash of its canonical JSON, so the same
config is the same run (which is what lets `compare` resume). Every choice is checked
here, before anything is trained or written, and refused in one line naming what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aebench.columns import config_label
from aebench.data import check_name
from aebench.errors import BadInput
from aebench.models import external
from aebench.models.families import CONV_DEPTHS, FC_DEPTHS
from aebench.models.registry import get_entry, is_zoo, list_models
from aebench.numbers import check_choice as check_choice  # re-exported: `config.check_choice` is what callers name
from aebench.numbers import check_number as check_number
from aebench.parsing import parse_choices as parse_choices
from aebench.parsing import parse_floats as parse_floats
from aebench.parsing import parse_ints as parse_ints
from aebench.parsing import split_list as split_list

SCHEMA_VERSION = 1

DEPTHS = tuple(FC_DEPTHS)
assert DEPTHS == tuple(CONV_DEPTHS)
DOWNSAMPLES = ("pool", "stride")
UPSAMPLES = ("transpose", "bilinear")
ACTIVATIONS = ("relu", "leakyrelu", "elu", "gelu")
OUTPUTS = ("sigmoid", "tanh", "none")
LOSSES = ("mse", "bce", "l1")
LR_SCHEDULES = ("none", "cosine", "step")
PRETRAINS = ("none", "greedy")
PRECISIONS = ("fp32", "bf16")
STEPS = ("auto", "autograd")
DEVICES = ("auto", "cpu", "cuda", "mps")

# model option -> (allowed choices, CLI flag); None for numeric options checked below
MODEL_CHOICES: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "depth": (DEPTHS, "--depth"),
    "hidden": (None, "--hidden"),
    "latent_dim": (None, "--latent-dim"),
    "downsample": (DOWNSAMPLES, "--downsample"),
    "upsample": (UPSAMPLES, "--upsample"),
    "activation": (ACTIVATIONS, "--activation"),
    "output": (OUTPUTS, "--output"),
    "batchnorm": (None, "--batchnorm"),
    "dropout": (None, "--dropout"),
    "pretrain": (PRETRAINS, "--pretrain"),
    "pretrain_epochs": (None, "--pretrain-epochs"),
}


@dataclass(frozen=True)
class ModelSpec:
    """What builds a model: the arch and the options it takes (None where they do not apply)."""

    arch: str
    depth: str | None = None
    hidden: tuple[int, ...] | None = None
    latent_dim: int | None = None
    downsample: str | None = None
    upsample: str | None = None
    activation: str | None = None
    output: str | None = None
    batchnorm: bool | None = None
    dropout: float | None = None
    pretrain: str | None = None
    pretrain_epochs: int | None = None
    # A user's own model (`aebench.models.external`): its factory's options as sorted (name, value) pairs, and
    # the MD5 of its module's source, so that editing the model is another experiment (another run id).
    options: tuple[tuple[str, Any], ...] = ()
    source: str | None = None

    def builder_options(self) -> dict[str, Any]:
        entry = get_entry(self.arch)
        own = dict(self.options)
        return {k: getattr(self, k) if k in _SPEC_FIELDS else own.get(k, v) for k, v in entry.defaults.items()}

    @property
    def output_activation(self) -> str:
        return self.output or get_entry(self.arch).ends_in  # every seed model ends in a sigmoid, PCA in none


def model_spec(arch: str, options: Mapping[str, Any] | None = None, **given: Any) -> ModelSpec:
    """Validate `given` options for `arch`, refuse those that do not apply, fill defaults.

    `given` holds only what the user set (None means not set); `options`, a user model's own (its factory's
    keyword options, `--option`), refused for a model that does not declare them.
    """
    entry = get_entry(arch)
    own = {k: v for k, v in entry.defaults.items() if k not in _SPEC_FIELDS}
    for key in options or {}:
        if key not in own:
            takes = ", ".join(sorted(own)) or "none"
            raise BadInput(f"--option {key} does not apply to arch {arch!r}; its own options: {takes}")
    given = {k: v for k, v in given.items() if v is not None}
    for key, value in given.items():
        flag = MODEL_CHOICES[key][1]
        if key not in entry.options:
            raise BadInput(f"{flag} does not apply to arch {arch!r}")
        choices = MODEL_CHOICES[key][0]
        if choices is not None:
            check_choice(flag, value, choices)
    if "hidden" in given and "depth" in given:
        raise BadInput("--hidden and --depth both set; --hidden gives the widths, so drop --depth")
    values = {k: v for k, v in {**entry.defaults, **entry.train_defaults, **given}.items() if k in _SPEC_FIELDS}
    if "hidden" in given:
        values["depth"] = None
        values["hidden"] = tuple(int(h) for h in given["hidden"])
        if not values["hidden"]:
            raise BadInput("--hidden: give at least one width, e.g. 512,256")
        for width in values["hidden"]:
            check_number("--hidden", width, low=1)
    if values.get("latent_dim") is not None:
        check_number("--latent-dim", values["latent_dim"], low=1)
    if values.get("dropout") is not None:
        check_number("--dropout", values["dropout"], low=0.0, high=1.0)
    if values.get("pretrain") == "greedy":
        values["pretrain_epochs"] = values.get("pretrain_epochs") or 1
        check_number("--pretrain-epochs", values["pretrain_epochs"], low=1)
    elif "pretrain_epochs" in given:
        raise BadInput("--pretrain-epochs needs --pretrain greedy")
    target = None if is_zoo(arch) else external.resolved(arch)
    if target is not None:  # a user's model: its own options, and its source's digest in the run id
        values["options"] = tuple(sorted({**own, **(options or {})}.items()))
        values["source"] = external.source_digest(target)
    return ModelSpec(arch=arch, **values)


_SPEC_FIELDS = frozenset(f.name for f in fields(ModelSpec)) - {"arch", "options", "source"}
# ModelSpec fields added later, left out of the hash at these values (no zoo model has them)
_MODEL_ADDED_LATER: dict[str, Any] = {"options": (), "source": None}


# Fields added after the first release, with the value every earlier run had: left out of
# the hash at that value, so adding a field does not change the id of any run already stored, and filled
# in at that value when a stored config without the field is read back (it was trained that way).
_ADDED_LATER: dict[str, Any] = {
    "precision": "fp32", "step": "auto", "machine": None,
    "val_fraction": 0.0, "patience": None, "min_delta": 0.001, "equal_steps": False,
}  # fmt: skip


def earlier_values() -> dict[str, Any]:
    """Each config field added after the first release, with the value every run before it had: how a record
    written before the field existed (a store's row, a study's runs.csv) is read."""
    return dict(_ADDED_LATER)


# The share of the training split held out for validation by default: what --patience watches and what
# `still_improving` is measured on; the test split is never used to choose anything.
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result; hashed to its `run_id`.

    Where it runs (device, results folder) is not part of it: the same config on
    another machine is the same experiment, and its record says which machine ran it.
    """

    model: ModelSpec
    dataset: str = "fashion-mnist"
    train_size: int | None = None
    loss: str = "mse"
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    lr_schedule: str = "none"
    precision: str = "fp32"
    step: str = "auto"  # auto: the written MLP step where it applies (CPU), else autograd; autograd: always
    # None: the experiment is the same on every machine. A device's name: this run is that machine's own
    # measurement, stored beside one made elsewhere (`compare --here`), so that both machines' speeds are kept.
    machine: str | None = None
    # A fixed validation holdout: the last `val_fraction` of the training images (the same for every seed).
    val_fraction: float = VAL_FRACTION
    # Early stopping: end when the validation loss has not improved by a relative `min_delta` for `patience`
    # epochs, `epochs` being the cap, and keep the best epoch's weights. None: train all `epochs`.
    patience: int | None = None
    min_delta: float = 0.001
    # Greedy pretraining's optimizer steps counted inside the `epochs` budget (fine-tuning gets what is left),
    # so a pretrained run and a plain one take the same number of steps; False: pretraining comes on top.
    equal_steps: bool = False

    def __post_init__(self) -> None:
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--step", self.step, STEPS)
        check_name(self.dataset)  # a published dataset, or idx:FOLDER
        check_choice("--loss", self.loss, LOSSES)
        check_choice("--lr-schedule", self.lr_schedule, LR_SCHEDULES)
        check_number("--lr", self.lr, low=0.0, low_open=True)
        check_number("--batch-size", self.batch_size, low=1)
        check_number("--epochs", self.epochs, low=1)
        check_number("--seed", self.seed, low=0)
        check_number("--weight-decay", self.weight_decay, low=0.0)
        if self.grad_clip is not None:
            check_number("--grad-clip", self.grad_clip, low=0.0, low_open=True)
        if self.train_size is not None:
            check_number("--train-size", self.train_size, low=1)
        check_number("--val-fraction", self.val_fraction, low=0.0, high=0.5)
        if self.val_fraction > 0 and self.train_size is not None and self.train_size < 2:
            raise BadInput(f"--train-size {self.train_size} leaves nothing to validate on; add --val-fraction 0")
        check_number("--min-delta", self.min_delta, low=0.0, high=1.0)
        if self.patience is not None:
            check_number("--patience", self.patience, low=1)
            if self.val_fraction == 0:
                raise BadInput("--patience needs a validation holdout; set --val-fraction above 0 (default 0.1)")
        if self.equal_steps and self.model.pretrain != "greedy":
            raise BadInput("--equal-steps needs --pretrain greedy (it counts pretraining inside --epochs)")
        if self.loss == "bce" and self.model.output_activation != "sigmoid":
            raise BadInput(f"--loss bce needs --output sigmoid (got {self.model.output!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        spec = dict(data["model"])
        if spec.get("hidden") is not None:
            spec["hidden"] = tuple(spec["hidden"])
        spec["options"] = tuple((str(k), v) for k, v in spec.get("options") or ())
        known = {f.name for f in fields(cls)} - {"model"}
        values = {**_ADDED_LATER, **{k: v for k, v in data.items() if k in known}}
        return cls(model=ModelSpec(**spec), **values)

    @property
    def run_id(self) -> str:
        fields_ = {k: v for k, v in self.to_dict().items() if _ADDED_LATER.get(k, object()) != v}
        fields_["model"] = {k: v for k, v in fields_["model"].items() if _MODEL_ADDED_LATER.get(k, object()) != v}
        canonical = json.dumps({"schema": SCHEMA_VERSION, **fields_}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short name for the run: its model's shape, whatever else differs from the defaults, its seed
        ('fc deep L16 lr=0.003 seed1'), in the short forms the report's tables use (`aebench.columns`)."""
        values = self.columns()
        defaults = RunConfig(model=model_spec(self.model.arch)).columns()
        shape = ("arch", "depth", "hidden", "latent_dim", "downsample", "upsample")
        axes = [a for a in CONFIG_COLUMNS if a in shape or (a != "seed" and values[a] != defaults[a])]
        return config_label(values, [a for a in axes if values[a] is not None] + ["seed"])

    def columns(self) -> dict[str, Any]:
        """The config as flat store columns (hidden widths as "512,256")."""
        flat: dict[str, Any] = {**asdict(self.model), **{k: v for k, v in self.to_dict().items() if k != "model"}}
        if flat["hidden"] is not None:
            flat["hidden"] = ",".join(str(h) for h in flat["hidden"])
        if flat["batchnorm"] is not None:
            flat["batchnorm"] = int(flat["batchnorm"])
        flat["options"] = " ".join(f"{k}={v}" for k, v in flat["options"]) or None
        return flat


CONFIG_COLUMNS: tuple[str, ...] = tuple(
    [f.name for f in fields(ModelSpec)] + [f.name for f in fields(RunConfig) if f.name != "model"]
)


@dataclass(frozen=True)
class GridSpec:
    """The axes of a `compare` grid; an axis left as None takes each arch's default."""

    archs: tuple[str, ...] = ("fc",)
    depths: tuple[str, ...] | None = None
    latent_dims: tuple[int, ...] | None = None
    downsample: tuple[str, ...] | None = None
    upsample: tuple[str, ...] | None = None
    activations: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    pretrain: tuple[str, ...] | None = None
    losses: tuple[str, ...] = ("mse",)
    lrs: tuple[float, ...] = (1e-3,)
    batch_sizes: tuple[int, ...] = (128,)
    datasets: tuple[str, ...] = ("fashion-mnist",)
    seeds: int = 1
    base: RunConfig = field(default_factory=lambda: RunConfig(model=ModelSpec(arch="fc")))
    # fixed model options applied wherever they apply (batchnorm, dropout, hidden, pretrain_epochs)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    equal_steps: bool = False  # greedy cells count their pretraining inside --epochs (the others have none)
    options: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # a user model's own options as axes

    # grid axis -> ModelSpec field and CLI flag
    MODEL_AXES = {
        "depths": ("depth", "--depths"),
        "latent_dims": ("latent_dim", "--latent-dims"),
        "downsample": ("downsample", "--downsample"),
        "upsample": ("upsample", "--upsample"),
        "activations": ("activation", "--activations"),
        "outputs": ("output", "--outputs"),
        "pretrain": ("pretrain", "--pretrain"),
    }

    def expand(self) -> list[RunConfig]:
        """Every cell of the grid, inapplicable axes collapsed, each config once, in order."""
        check_number("--seeds", self.seeds, low=1)
        entries = [get_entry(a) for a in self.archs]
        for axis, (opt, flag) in self.MODEL_AXES.items():
            if getattr(self, axis) is not None and not any(opt in e.options for e in entries):
                raise BadInput(f"{flag} does not apply to arch {', '.join(self.archs)}")
        for opt, value in self.fixed.items():
            if value is not None and not any(opt in e.options for e in entries):
                raise BadInput(f"{MODEL_CHOICES[opt][1]} does not apply to arch {', '.join(self.archs)}")
        for opt in self.options:
            if not any(opt in e.defaults and opt not in _SPEC_FIELDS for e in entries):
                raise BadInput(f"--option {opt} does not apply to arch {', '.join(self.archs)}: no factory takes it")
        if self.depths is not None and "hidden" in {k for k, v in self.fixed.items() if v is not None}:
            raise BadInput("--hidden and --depths both set; --hidden gives the widths, so drop --depths")
        configs: dict[str, RunConfig] = {}
        for entry in entries:
            axes = {
                opt: (getattr(self, axis) if opt in entry.options and getattr(self, axis) else (None,))
                for axis, (opt, _) in self.MODEL_AXES.items()
            }
            fixed = {k: v for k, v in self.fixed.items() if k in entry.options and v is not None}
            own = {k: v for k, v in self.options.items() if k in entry.defaults and k not in _SPEC_FIELDS}
            for combo, picked in itertools.product(itertools.product(*axes.values()),
                                                   itertools.product(*own.values())):  # fmt: skip
                given = {**fixed, **dict(zip(axes, combo, strict=True))}
                spec = model_spec(entry.name, options=dict(zip(own, picked, strict=True)), **given)
                for dataset, loss, lr, bs, i in itertools.product(
                    self.datasets, self.losses, self.lrs, self.batch_sizes, range(self.seeds)
                ):
                    if loss == "bce" and spec.output_activation != "sigmoid":
                        continue  # BCE needs [0, 1] outputs; such cells do not exist
                    cfg = replace(
                        self.base,
                        model=spec,
                        dataset=dataset,
                        loss=loss,
                        lr=lr,
                        batch_size=bs,
                        seed=self.base.seed + i,
                        equal_steps=self.equal_steps and spec.pretrain == "greedy",
                    )
                    configs.setdefault(cfg.run_id, cfg)
        if not configs:
            raise BadInput("the grid is empty: --losses bce needs --outputs sigmoid")
        return list(configs.values())


def all_archs() -> list[str]:
    return list_models()


def as_tuple(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def option_axes(archs: Sequence[str], given: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """`--option width=32,64` (repeatable) as axes of a user model's own options, each value read as the type of
    the option's default in the first of `archs` whose factory declares it; refused where none does."""
    axes: dict[str, tuple[Any, ...]] = {}
    for item in given:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise BadInput(f"--option {item!r}: give NAME=VALUE[,VALUE...], e.g. --option width=32,64")
        owner = next((a for a in archs if key in get_entry(a).defaults and key not in _SPEC_FIELDS), None)
        if owner is None:
            raise BadInput(f"--option {key} does not apply to arch {', '.join(archs)}: no factory takes it")
        default = get_entry(owner).defaults[key]
        axes[key] = tuple(dict.fromkeys(external.typed(owner, key, v, default) for v in split_list("--option", values)))
    return axes
