"""The model zoo as rows: each registered model built for a dataset's image shape, with its sizes and options.

Separate from the registry because listing the zoo builds every model (to count its parameters
and read its latent size), which registering and creating one model never needs; `aebench models`
and anything else that shows the zoo read these rows.
"""

from __future__ import annotations

from typing import Any

from aebench.data import image_shape
from aebench.models.base import count_params
from aebench.models.registry import create_model, get_entry, list_models


def model_rows(pattern: str = "*", dataset: str = "fashion-mnist") -> list[dict[str, Any]]:
    """One JSON-ready row per model whose name matches the glob `pattern`, sized for `dataset`'s published shape.

    The shape is the published one, so no dataset file has to be on disk to list the zoo.
    """
    shape = image_shape(dataset)
    rows = []
    for name in list_models(pattern):
        entry = get_entry(name)
        model = create_model(name, shape)
        rows.append({
            "name": name,
            "params": count_params(model),
            "encoder_params": count_params(model.encoder),
            "decoder_params": count_params(model.decoder),
            "latent_size": model.latent_size,
            "options": sorted(entry.options),
            "defaults": {**entry.defaults, **entry.train_defaults},
            "description": entry.description,
        })  # fmt: skip
    return rows
