"""aebench: benchmark autoencoder architectures (FC vs conv, depth, latent size, ...) on real data."""

from aebench.config import GridSpec, ModelSpec, RunConfig, model_spec
from aebench.engine import run_one
from aebench.registry import create_model, list_models
from aebench.runner import run_grid

__version__ = "0.1.0"

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
