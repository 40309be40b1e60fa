"""The seed tutorial's named models, layer for layer, so their parameter counts hold.

Only the input size is taken from the data instead of the seed's hard-coded 784/28.
"""

from __future__ import annotations

import math

from torch import nn

from aebench.models.base import Autoencoder
from aebench.models.registry import register_model

Shape = tuple[int, int, int]
# The tutorial's named models in its order: the one list `aebench bench`, the benchmarks and the docs read.
SEED_MODELS = ("seed-ae", "seed-simple", "seed-deep", "seed-conv", "seed-deepconv", "seed-flexible")


@register_model("seed-ae", "seed Part 1 `AE`: 784-400-20, ReLU, linear latent, sigmoid output")
def seed_ae(input_shape: Shape) -> Autoencoder:
    d, hidden, latent = math.prod(input_shape), 400, 20
    encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, latent))
    decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid())
    return Autoencoder(input_shape, encoder, decoder, (latent,))


@register_model("seed-simple", "seed `SimpleAutoencoder`: 784-256-128-64, ReLU on the latent")
def seed_simple(input_shape: Shape) -> Autoencoder:
    d, latent = math.prod(input_shape), 64
    encoder = nn.Sequential(
        nn.Linear(d, 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, latent), nn.ReLU(),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(latent, 128), nn.ReLU(),
        nn.Linear(128, 256), nn.ReLU(),
        nn.Linear(256, d), nn.Sigmoid(),
    )  # fmt: skip
    return Autoencoder(input_shape, encoder, decoder, (latent,))


def _deep_block(n_in: int, n_out: int) -> list[nn.Module]:
    # The seed's order: Linear, ReLU, BatchNorm, Dropout(0.2).
    return [nn.Linear(n_in, n_out), nn.ReLU(), nn.BatchNorm1d(n_out), nn.Dropout(0.2)]


@register_model("seed-deep", "seed Part 3 `DeepAutoencoder`: 784-512-256-128-32, BatchNorm + Dropout 0.2")
def seed_deep(input_shape: Shape) -> Autoencoder:
    d, latent = math.prod(input_shape), 32
    encoder = nn.Sequential(
        *_deep_block(d, 512), *_deep_block(512, 256), *_deep_block(256, 128),
        nn.Linear(128, latent), nn.ReLU(),
    )  # fmt: skip
    decoder = nn.Sequential(
        *_deep_block(latent, 128), *_deep_block(128, 256), *_deep_block(256, 512),
        nn.Linear(512, d), nn.Sigmoid(),
    )  # fmt: skip
    return Autoencoder(input_shape, encoder, decoder, (latent,))


@register_model("seed-conv", "seed Part 2 `ConvAutoencoder`: Conv16 + MaxPool, ConvTranspose back (225 params)")
def seed_conv(input_shape: Shape) -> Autoencoder:
    c, h, w = input_shape
    encoder = nn.Sequential(
        nn.Conv2d(c, 16, kernel_size=3, stride=1, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
    )  # fmt: skip
    decoder = nn.Sequential(nn.ConvTranspose2d(16, c, kernel_size=2, stride=2), nn.Sigmoid())
    return Autoencoder(input_shape, encoder, decoder, (16, h // 2, w // 2), flatten=False)


@register_model("seed-deepconv", "seed Part 2 `DeepConvAutoencoder`: 3 conv stages, latent 64x3x3, BatchNorm")
def seed_deepconv(input_shape: Shape) -> Autoencoder:
    c, h, w = input_shape
    lc = 64  # the seed's latent_channels default

    def down(n_in: int, n_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(n_in, n_out, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True),
            nn.BatchNorm2d(n_out), nn.MaxPool2d(kernel_size=2, stride=2),
        ]  # fmt: skip

    encoder = nn.Sequential(*down(c, 16), *down(16, 32), *down(32, lc))
    decoder = nn.Sequential(
        nn.ConvTranspose2d(lc, 64, kernel_size=3, stride=2, padding=0, output_padding=0),
        nn.ReLU(inplace=True), nn.BatchNorm2d(64),
        nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1),
        nn.ReLU(inplace=True), nn.BatchNorm2d(32),
        nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),
        nn.ReLU(inplace=True), nn.BatchNorm2d(16),
        nn.Conv2d(16, c, kernel_size=3, stride=1, padding=1), nn.Sigmoid(),
    )  # fmt: skip
    # The seed's decoder is fixed to 3 -> 7 -> 14 -> 28; for other image sizes
    # create_model's shape check refuses it instead of silently cropping.
    return Autoencoder(input_shape, encoder, decoder, (lc, h // 8, w // 8), flatten=False)


@register_model(
    "seed-flexible",
    "seed Part 4 `FlexibleAutoencoder`: 784-256-L, under- or overcomplete by --latent-dim",
    latent_dim=64,
)
def seed_flexible(input_shape: Shape, latent_dim: int) -> Autoencoder:
    d, hidden = math.prod(input_shape), 256
    encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim), nn.ReLU())
    decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid())
    return Autoencoder(input_shape, encoder, decoder, (latent_dim,))
