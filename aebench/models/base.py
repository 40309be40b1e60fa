"""The one model protocol every registered autoencoder follows.

The seed's classes disagree (`AE.forward` returns x̂, `SimpleAutoencoder.forward`
returns (x̂, z)); wrapping their exact layers in one protocol lets the engine, the
metrics and the tests treat every model alike.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Autoencoder(nn.Module):
    """encode(x) -> z, decode(z) -> x̂, forward(x) -> x̂, all on (N, C, H, W) images.

    Args:
        input_shape: (C, H, W) of one image.
        encoder: maps images (flattened first when `flatten`) to codes.
        decoder: maps codes to images (or flat vectors, reshaped here).
        latent_shape: shape of one code, for the compression ratio and the probe.
        output: the output activation's name, which decides how data is scaled.
        flatten: whether the encoder takes flat vectors (the FC models).
    """

    closed_form = False  # True for a baseline fitted in one pass (`fit`) instead of trained by the loop

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        encoder: nn.Module,
        decoder: nn.Module,
        latent_shape: tuple[int, ...],
        output: str = "sigmoid",
        flatten: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.encoder = encoder
        self.decoder = decoder
        self.latent_shape = tuple(latent_shape)
        self.output = output
        self.flatten = flatten

    @property
    def latent_size(self) -> int:
        return math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.encoder(x.flatten(1) if self.flatten else x)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(z)
        return out.reshape(-1, *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def fit(self, x: torch.Tensor) -> float:
        """Fit a closed-form model to the training images `x`; returns the FLOPs it took."""
        raise NotImplementedError(f"{type(self).__name__} is trained, not fitted")


def activation(name: str) -> nn.Module:
    """Hidden-layer activation by name (the seed's Exercise 1c choices)."""
    layers: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU}
    return layers[name]()


def output_activation(name: str) -> nn.Module:
    """Output activation by name; the data is scaled to its range (seed Part 5 table)."""
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity}[name]()


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
