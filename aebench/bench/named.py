"""A benched model named with its options, `conv:downsample=stride:depth=deep`, as one `--models` item.

Why: the bench must time the grid's own families with the options a grid gives them (the converged
study's conv models are `conv` with `downsample` and `latent_dim`), not only the seed's fixed models.
Each value is read as the type the model's registered default has, then checked as `compare` checks it.
"""

from __future__ import annotations

from typing import Any

from aebench.config import MODEL_CHOICES, ModelSpec, model_spec
from aebench.errors import BadInput
from aebench.models.registry import get_entry

_INTS = {"latent_dim", "pretrain_epochs"}
_FLOATS = {"dropout"}
_FLAGS = {"batchnorm"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _value(key: str, text: str) -> Any:
    flag = MODEL_CHOICES[key][1]
    try:
        if key in _INTS:
            return int(text)
        if key in _FLOATS:
            return float(text)
        if key == "hidden":  # widths joined by '-': hidden=512-256
            return tuple(int(w) for w in text.split("-"))
    except ValueError:
        raise BadInput(f"{flag}: {text!r} is not a number") from None
    if key in _FLAGS:
        if text.lower() not in _TRUE + _FALSE:
            raise BadInput(f"{flag}: {text!r} is not one of {', '.join(_TRUE + _FALSE)}")
        return text.lower() in _TRUE
    return text


def parse_model(text: str) -> ModelSpec:
    """`arch[:option=value]...` as a checked `ModelSpec`; an unknown arch or option, or a bad value, is one line."""
    arch, *pairs = text.split(":")
    entry = get_entry(arch)  # an unknown arch is refused by name here
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise BadInput(f"--models: {text!r}: give options as {arch}:option=value, e.g. conv:downsample=stride")
        if key not in MODEL_CHOICES or key not in entry.options:
            takes = ", ".join(sorted(entry.options)) or "none"
            raise BadInput(f"--models: {arch!r} has no option {key!r}; it takes: {takes}")
        given[key] = _value(key, value)
    return model_spec(arch, **given)
