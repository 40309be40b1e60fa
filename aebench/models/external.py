"""A user's own model: `--archs mypkg.models:tiny_ae` (an import string, as uvicorn takes) or a name an installed
package offers through the `aebench.models` entry-point group.

Why: the question a benchmarking suite exists for is "how does mine compare with the zoo and with PCA, on the same
footing?". The string names a factory `tiny_ae(input_shape, latent_dim, **options) -> nn.Module` whose module has
`encode(x)`, `decode(z)` and `forward(x)`; its keyword options with defaults are the model's options (grid axes
through `--option`). The factory's module source is digested into the run id, so editing the model retrains it
instead of reusing stale runs. A module without `encode`/`decode` still trains (reconstruction, size, speed);
what needs codes says it has none (`NoCodes`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aebench.errors import AebenchError, BadInput
from aebench.models.base import Autoencoder

GROUP = "aebench.models"
_POSITIONAL = ("input_shape", "latent_dim")
DEFAULT_LATENT = 32


class NoCodes(AebenchError):
    """The model has no `encode`/`decode`: what needs its codes (probe, latent pictures) is not measured."""


def is_import_string(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and "/" not in name


def entry_points() -> dict[str, str]:
    """Name -> import string of every model an installed package offers (`aebench.models` entry points)."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=GROUP)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def factory(target: str) -> Callable[..., Any]:
    """The callable an import string names; one line for a module that does not import or a missing name."""
    module_name, _, attr = target.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as `python -m` and uvicorn do: a module in the working folder imports
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001  (a user's module can raise anything while importing)
        raise BadInput(f"--archs {target}: module {module_name!r} does not import ({_first_line(exc)})") from None
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise BadInput(f"--archs {target}: module {module_name!r} has no attribute {attr!r}")
        found = getattr(found, part)
    if not callable(found):
        raise BadInput(f"--archs {target}: {attr!r} is not callable; name a factory (input_shape, latent_dim, ...)")
    return found  # type: ignore[no-any-return]


def options_of(fn: Callable[..., Any]) -> tuple[int | None, dict[str, Any]]:
    """The factory's latent_dim default (None: it has none) and its own keyword options with their defaults."""
    params = inspect.signature(fn).parameters
    latent = params.get("latent_dim")
    latent_default = None if latent is None or latent.default is inspect.Parameter.empty else latent.default
    options = {
        name: p.default
        for name, p in params.items()
        if name not in _POSITIONAL and p.default is not inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }  # fmt: skip
    return latent_default, options


def source_digest(target: str) -> str:
    """MD5 of the source of the module that defines the factory (its file), so an edit changes the run id."""
    module_name = target.partition(":")[0]
    factory(target)  # imported, with its errors said
    module = sys.modules[module_name]
    path = getattr(module, "__file__", None)
    text = Path(path).read_bytes() if path else inspect.getsource(module).encode()
    return hashlib.md5(text).hexdigest()


class External(Autoencoder):
    """A user's module behind aebench's protocol: forward is the module's, encode/decode where it has them."""

    def __init__(self, input_shape: tuple[int, int, int], module: nn.Module, latent_dim: int, name: str) -> None:
        super().__init__(input_shape, module, nn.Identity(), (latent_dim,), output="sigmoid", flatten=False)
        self.name = name
        self.has_codes = callable(getattr(module, "encode", None)) and callable(getattr(module, "decode", None))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_codes:
            raise NoCodes(f"{self.name} has no encode/decode: its codes cannot be read")
        user: Any = self.encoder  # the user's module, typed by its own code
        z: torch.Tensor = user.encode(x)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if not self.has_codes:
            raise NoCodes(f"{self.name} has no encode/decode: its codes cannot be read")
        user: Any = self.encoder
        out: torch.Tensor = user.decode(z)
        return out.reshape(-1, *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(x)
        return out


def build(target: str, input_shape: tuple[int, int, int], latent_dim: int, **options: Any) -> Autoencoder:
    """The user's module, built and wrapped; one line for a factory that does not return an `nn.Module`."""
    fn = factory(target)
    try:
        module = fn(tuple(input_shape), latent_dim, **options)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001  (the factory is the user's code)
        raise BadInput(f"--archs {target}: the factory raised {_first_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise BadInput(f"--archs {target}: the factory returned {type(module).__name__}, not a torch nn.Module")
    model = External(input_shape, module, latent_dim, target)
    if model.has_codes:  # the code's true size, for the compression ratio and the probe
        user: Any = module
        with torch.no_grad():
            z = user.encode(torch.zeros(1, *input_shape))
        model.latent_shape = tuple(z.shape[1:])
    return model


def builder_for(target: str) -> tuple[Callable[..., Autoencoder], dict[str, Any]]:
    """A registry builder for `target` and its defaults (latent_dim, then the factory's own options)."""
    latent, options = options_of(factory(target))
    defaults: dict[str, Any] = {"latent_dim": latent if latent is not None else DEFAULT_LATENT, **options}
    return partial(build, target), defaults


def typed(target: str, key: str, text: str, default: Any) -> Any:
    """A value given on the command line (`--option width=64`) as the type of the option's default."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
    except ValueError:
        kind = type(default).__name__
        raise BadInput(f"--option {key}={text}: {target}'s {key} is {kind} (default {default!r})") from None
    return text


def describe(target: str) -> str:
    doc = inspect.getdoc(factory(target)) or ""
    return doc.splitlines()[0] if doc else f"your model {target}"


def resolved(name: str) -> str | None:
    """The import string behind `name`: itself, or the entry point it names; None for neither."""
    if is_import_string(name):
        return name
    return entry_points().get(name)


def options_help(defaults: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in defaults.items() if k != "latent_dim") or "none"
