"""A trained model's inputs and outputs as images for people to look at: [0, 1] numpy arrays, no drawing.

Both the report's pictures (`aebench.report.arrays`) and the MLflow export's reconstruction
picture (`aebench.integrations.mlflow`) show test images next to what a checkpoint's model makes
of them. They are siblings that must not import each other, so the one way to get from a model
and uint8 images to displayable arrays lives here, below both; how each of them lays the arrays
out is its own business (and its own matplotlib). Pure torch and numpy, on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from aebench.data import to_device, to_unit
from aebench.models.base import Autoencoder

CPU = torch.device("cpu")


def model_input(images: torch.Tensor, output: str) -> torch.Tensor:
    """uint8 images (N, C, H, W) as the model takes them: floats in its output activation's range, on the CPU."""
    return to_device(images, CPU, output)


def to_images(x: torch.Tensor, output: str) -> np.ndarray:
    """Model-range images (N, C, H, W) -> [0, 1] arrays (N, H, W), or (N, H, W, C) for colour, for imshow."""
    arr = to_unit(x, output).clamp(0.0, 1.0).detach().cpu().numpy()
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images -> (the images as the model saw them, its reconstructions), both as `to_images` arrays."""
    x = model_input(images, model.output)
    return to_images(x, model.output), to_images(model(x), model.output)
