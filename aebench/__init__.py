"""aebench: benchmark autoencoder architectures (FC vs conv, depth, latent size, ...) on real data.

The public names load on first use (PEP 562), so `import aebench` costs no torch or pandas
import: `aebench --help` and a script that only reads a config start at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "GridSpec": "aebench.config",
    "ModelSpec": "aebench.config",
    "RunConfig": "aebench.config",
    "model_spec": "aebench.config",
    "create_model": "aebench.models",
    "list_models": "aebench.models",
    "run_one": "aebench.train.engine",
    "run_grid": "aebench.grid.runner",
}

__all__ = [
    "GridSpec",
    "ModelSpec",
    "RunConfig",
    "__version__",
    "create_model",
    "list_models",
    "model_spec",
    "run_grid",
    "run_one",
]

if TYPE_CHECKING:  # for type checkers only: the real imports happen in __getattr__
    from aebench.config import GridSpec, ModelSpec, RunConfig, model_spec
    from aebench.grid.runner import run_grid
    from aebench.models import create_model, list_models
    from aebench.train.engine import run_one


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aebench' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
