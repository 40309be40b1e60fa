"""The model zoo: the seed's models layer for layer (`zoo`) and the parametric families (`families`),
behind one registry (`registry`: name -> builder) and one protocol (`base.Autoencoder`).

Importing this package registers every model, so `create_model` and `list_models` need no loader.
"""

from aebench.models import families, pca, zoo  # noqa: F401  (importing them registers their models)
from aebench.models.base import Autoencoder, count_params
from aebench.models.registry import ModelEntry, create_model, get_entry, list_models, register_model

__all__ = ["Autoencoder", "ModelEntry", "count_params", "create_model", "get_entry", "list_models", "register_model"]
