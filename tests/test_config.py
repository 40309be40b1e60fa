"""Run ids, option applicability, comma-list parsing and grid expansion."""

from __future__ import annotations

import dataclasses

import pytest

from aebench.columns import CONFIG
from aebench.config import (
    CONFIG_COLUMNS,
    GridSpec,
    ModelSpec,
    RunConfig,
    model_spec,
    parse_choices,
    parse_floats,
    parse_ints,
)
from aebench.errors import BadInput


def test_run_id_is_stable_and_canonical() -> None:
    a = RunConfig(model=model_spec("fc", depth="shallow"), epochs=3)
    b = RunConfig(model=model_spec("fc", depth="shallow", latent_dim=32), epochs=3)  # default spelled out
    assert a.run_id == b.run_id and len(a.run_id) == 16
    assert RunConfig.from_dict(a.to_dict()) == a
    assert dataclasses.replace(a, seed=1).run_id != a.run_id
    assert RunConfig(model=model_spec("fc", depth="deep"), epochs=3).run_id != a.run_id


def test_run_ids_of_stored_runs_never_change() -> None:
    # Ids recorded by the first release; a field added since must keep them (see _ADDED_LATER).
    old = RunConfig(model=model_spec("seed-ae"), epochs=2, val_fraction=0.0)  # trained on every training image
    assert old.run_id == "a9982bc5f71a51f8"
    assert dataclasses.replace(old, precision="bf16").run_id != "a9982bc5f71a51f8"
    # A config stored before the holdout existed reads back as what it was, under its id; today's default
    # holds out a validation set, which is another experiment and another id.
    stored = {k: v for k, v in old.to_dict().items() if k not in ("val_fraction", "patience", "min_delta")}
    assert RunConfig.from_dict(stored).run_id == "a9982bc5f71a51f8"
    assert RunConfig(model=model_spec("seed-ae"), epochs=2).run_id != "a9982bc5f71a51f8"


def test_config_is_frozen() -> None:
    cfg = RunConfig(model=model_spec("seed-ae"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arch", "given", "message"),
    [
        ("fc", {"downsample": "pool"}, "--downsample does not apply to arch 'fc'"),
        ("seed-ae", {"latent_dim": 8}, "--latent-dim does not apply to arch 'seed-ae'"),
        ("conv", {"pretrain": "greedy"}, "--pretrain does not apply to arch 'conv'"),
        ("conv", {"hidden": (10,)}, "--hidden does not apply"),
        ("fc", {"depth": "huge"}, "--depth: unknown value 'huge'; choose from: shallow, medium, deep"),
        ("fc", {"activation": "tanh"}, "choose from: relu, leakyrelu, elu, gelu"),
        ("conv", {"upsample": "nearest"}, "choose from: transpose, bilinear"),
        ("fc", {"latent_dim": 0}, "--latent-dim: 0 is not allowed"),
        ("fc", {"latent_dim": -3}, "--latent-dim: -3 is not allowed"),
        ("fc", {"dropout": 1.0}, "--dropout"),
        ("fc", {"pretrain_epochs": 2}, "--pretrain-epochs needs --pretrain greedy"),
        ("fc", {"hidden": (64,), "depth": "deep"}, "--hidden and --depth"),
    ],
)
def test_model_spec_refusals(arch: str, given: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        model_spec(arch, **given)


def test_model_spec_fills_defaults_only_where_they_apply() -> None:
    assert model_spec("seed-ae") == ModelSpec(arch="seed-ae")
    conv = model_spec("conv")
    assert (conv.depth, conv.latent_dim, conv.downsample, conv.upsample, conv.pretrain) == (
        "medium", 32, "pool", "transpose", None
    )  # fmt: skip
    assert model_spec("fc", pretrain="greedy").pretrain_epochs == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "--epochs: 0"),
        ("batch_size", -1, "--batch-size"),
        ("lr", 0.0, "--lr: 0.0 is not allowed; it must be > 0.0"),
        ("lr", float("nan"), "--lr"),
        ("loss", "huber", "--loss: unknown value 'huber'"),
        ("dataset", "cifar10", "unknown dataset 'cifar10'; choose from: mnist, fashion-mnist, kmnist"),
        ("lr_schedule", "linear", "--lr-schedule"),
        ("grad_clip", 0.0, "--grad-clip"),
    ],
)
def test_run_config_refusals(field: str, value: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        RunConfig(model=model_spec("fc"), **{field: value})


def test_bce_needs_sigmoid_output() -> None:
    with pytest.raises(BadInput, match="--loss bce needs --output sigmoid"):
        RunConfig(model=model_spec("fc", output="tanh"), loss="bce")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2,16,32", (2, 16, 32)), (" 2 , 2 ,4", (2, 4)), ("128", (128,))],
)
def test_parse_ints(text: str, expected: tuple[int, ...]) -> None:
    assert parse_ints("--latent-dims", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not a comma list"), ("2,,4", "not a comma list"), ("2,x", "'x' is not a whole number"),
     ("0", "0 is not allowed"), ("-4", "-4 is not allowed"), ("1.5", "'1.5' is not a whole number")],
)  # fmt: skip
def test_parse_ints_refusals(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_ints("--latent-dims", text)


def test_parse_choices_and_floats() -> None:
    assert parse_choices("--depths", "shallow,deep", ("shallow", "medium", "deep")) == ("shallow", "deep")
    with pytest.raises(BadInput, match="--depths: unknown value 'huge'; choose from: shallow, medium, deep"):
        parse_choices("--depths", "shallow,huge", ("shallow", "medium", "deep"))
    assert parse_floats("--lrs", "1e-3,0.01") == (1e-3, 0.01)
    with pytest.raises(BadInput, match="'fast' is not a number"):
        parse_floats("--lrs", "fast")


def test_exercise_5_grid_is_three_runs() -> None:
    configs = GridSpec(depths=("shallow", "medium", "deep")).expand()
    assert [c.model.depth for c in configs] == ["shallow", "medium", "deep"]
    assert {c.model.latent_dim for c in configs} == {32}


def test_inapplicable_axes_collapse() -> None:
    configs = GridSpec(archs=("fc", "conv", "seed-ae"), downsample=("pool", "stride"), latent_dims=(2, 16)).expand()
    by_arch = {a: [c for c in configs if c.model.arch == a] for a in ("fc", "conv", "seed-ae")}
    assert len(by_arch["fc"]) == 2  # latent dims only: downsample does not apply
    assert len(by_arch["conv"]) == 4
    assert len(by_arch["seed-ae"]) == 1  # neither axis applies
    assert len({c.run_id for c in configs}) == len(configs) == 7


def test_seeds_and_pretrain_axes() -> None:
    configs = GridSpec(pretrain=("none", "greedy"), seeds=3).expand()
    assert len(configs) == 6
    assert sorted({c.seed for c in configs}) == [0, 1, 2]
    assert {c.model.pretrain for c in configs} == {"none", "greedy"}


def test_axis_that_applies_to_no_arch_is_refused() -> None:
    with pytest.raises(BadInput, match="--downsample does not apply to arch fc"):
        GridSpec(archs=("fc",), downsample=("stride",)).expand()
    with pytest.raises(BadInput, match="--seeds: 0"):
        GridSpec(seeds=0).expand()


def test_bce_cells_need_sigmoid() -> None:
    configs = GridSpec(outputs=("sigmoid", "tanh"), losses=("mse", "bce")).expand()
    assert {(c.model.output, c.loss) for c in configs} == {("sigmoid", "mse"), ("sigmoid", "bce"), ("tanh", "mse")}


def test_the_column_registry_names_every_config_axis_once() -> None:
    # The store's schema and every table read `aebench.columns`: an axis added to RunConfig or ModelSpec
    # without its column there would be trained but never stored.
    assert CONFIG == CONFIG_COLUMNS
