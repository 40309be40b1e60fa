"""Name -> model builder. The only ways in are `create_model` and `list_models`.

The registry is filled by importing `aebench.models` (its `__init__` imports the zoo and the
families), so this module imports neither: the arrows run zoo -> registry only.

Each entry also declares which model options it takes and their defaults, so that
config validation can refuse an option that does not apply instead of dropping it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from aebench.errors import BadInput
from aebench.models import external
from aebench.models.base import Autoencoder

Builder = Callable[..., Autoencoder]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    ends_in: str = "sigmoid"  # the output activation of a model without an `output` option: the data's range

    @property
    def options(self) -> frozenset[str]:
        """Every option this model takes: builder options plus training-only ones."""
        return frozenset(self.defaults) | frozenset(self.train_defaults)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    description: str,
    train_defaults: Mapping[str, Any] | None = None,
    ends_in: str = "sigmoid",
    **defaults: Any,
) -> Callable[[Builder], Builder]:
    """Register `builder(input_shape, **options)` under `name`.

    `defaults` names every builder option the model accepts and `train_defaults` the
    options only training reads (greedy pretraining); any other option is refused.
    """

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, description, dict(defaults), dict(train_defaults or {}), ends_in)
        return builder

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """The zoo's names and those installed packages offer (`aebench.models` entry points) matching `pattern`."""
    names = set(_REGISTRY) | set(external.entry_points())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def is_zoo(name: str) -> bool:
    """Whether `name` is one of aebench's own models (not a user's factory or an entry point)."""
    return name in _REGISTRY


def get_entry(name: str) -> ModelEntry:
    """The zoo's entry, or one for a user's factory named by an import string or an entry point."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    target = external.resolved(name)
    if target is None:
        raise BadInput(f"unknown arch {name!r}; choose from: {', '.join(list_models())}, or your own as module:factory")
    builder, defaults = external.builder_for(target)
    return ModelEntry(name, builder, external.describe(target), defaults)


def create_model(name: str, input_shape: tuple[int, int, int], **options: Any) -> Autoencoder:
    """Build model `name` for inputs of shape (C, H, W); options not given take defaults."""
    entry = get_entry(name)
    extra = sorted(set(options) - set(entry.defaults))
    if extra:
        raise BadInput(f"option {extra[0]!r} does not apply to building arch {name!r}")
    model = entry.builder(tuple(input_shape), **{**entry.defaults, **options})
    _check_output_shape(name, model, tuple(input_shape))
    return model


def _check_output_shape(name: str, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Refuse a model whose reconstruction would not match its input (fixed-size seed decoders)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_shape))
    except Exception as exc:  # noqa: BLE001  (a user's model can raise anything; a zoo model raises RuntimeError)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"arch {name!r} cannot take inputs of shape {input_shape}: {first}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape[1:]) != input_shape:
        raise BadInput(f"arch {name!r} reconstructs {tuple(out.shape[1:])} from inputs of shape {input_shape}")
    if not bool(torch.isfinite(out).all()):
        raise BadInput(f"arch {name!r}: its reconstruction of a blank image is not finite (NaN or inf)")
