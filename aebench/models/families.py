"""Parametric model families for grids: `fc` (MLP hourglass) and `conv` (conv stages + dense bottleneck).

Depth presets come from the seed's Exercise 5 (fc) and its 16/32/64-channel conv stages;
every size is derived from the input shape so other image sizes work too.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from aebench.errors import BadInput
from aebench.models.base import Autoencoder, activation, output_activation
from aebench.models.registry import register_model

Shape = tuple[int, int, int]

FC_DEPTHS: dict[str, tuple[int, ...]] = {
    "shallow": (128,),
    "medium": (512, 256),
    "deep": (512, 384, 256, 128),
}
CONV_DEPTHS: dict[str, int] = {"shallow": 1, "medium": 2, "deep": 3}
CONV_CHANNELS = (16, 32, 64)

_COMMON: dict[str, Any] = {"activation": "relu", "output": "sigmoid", "batchnorm": False, "dropout": 0.0}


def _regularise(n: int, batchnorm: bool, dropout: float, conv: bool = False) -> list[nn.Module]:
    # The seed's order after each hidden layer: activation, then BatchNorm, then Dropout.
    layers: list[nn.Module] = []
    if batchnorm:
        layers.append(nn.BatchNorm2d(n) if conv else nn.BatchNorm1d(n))
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout) if conv else nn.Dropout(dropout))
    return layers


def fc_widths(depth: str | None, hidden: tuple[int, ...] | None) -> tuple[int, ...]:
    return tuple(hidden) if hidden is not None else FC_DEPTHS[depth or "medium"]


@register_model(
    "fc",
    "symmetric MLP hourglass; --depth shallow|medium|deep or --hidden widths",
    train_defaults={"pretrain": "none", "pretrain_epochs": None},
    depth="medium",
    hidden=None,
    latent_dim=32,
    **_COMMON,
)
def fc_ae(
    input_shape: Shape,
    depth: str | None,
    hidden: tuple[int, ...] | None,
    latent_dim: int,
    activation: str,
    output: str,
    batchnorm: bool,
    dropout: float,
) -> Autoencoder:
    act = activation
    dims = (math.prod(input_shape), *fc_widths(depth, hidden))
    encoder: list[nn.Module] = []
    decoder: list[nn.Module] = [nn.Linear(latent_dim, dims[-1]), _act(act), *_regularise(dims[-1], batchnorm, dropout)]
    for n_in, n_out in zip(dims, dims[1:], strict=False):
        encoder += [nn.Linear(n_in, n_out), _act(act), *_regularise(n_out, batchnorm, dropout)]
    encoder.append(nn.Linear(dims[-1], latent_dim))  # no activation on the latent
    for n_in, n_out in zip(dims[:1:-1], dims[-2:0:-1], strict=True):
        decoder += [nn.Linear(n_in, n_out), _act(act), *_regularise(n_out, batchnorm, dropout)]
    decoder += [nn.Linear(dims[1], dims[0]), output_activation(output)]
    return Autoencoder(input_shape, nn.Sequential(*encoder), nn.Sequential(*decoder), (latent_dim,), output)


def _act(name: str) -> nn.Module:
    return activation(name)


def _transpose(n_in: int, n_out: int, src: tuple[int, int], dst: tuple[int, int]) -> nn.Module:
    """A stride-2 3x3 transposed conv from `src` to exactly `dst` (per-dim padding choice)."""
    pads, extra = [], []
    for i, o in zip(src, dst, strict=True):
        # out = (in - 1) * 2 - 2 * pad + 3 + output_padding, with output_padding in {0, 1}
        for pad in (1, 0):
            op = o - (2 * i + 1 - 2 * pad)
            if op in (0, 1):
                break
        else:
            raise BadInput(f"cannot upsample {src} to {dst} with a stride-2 transposed conv")
        pads.append(pad)
        extra.append(op)
    return nn.ConvTranspose2d(
        n_in, n_out, kernel_size=3, stride=2, padding=(pads[0], pads[1]), output_padding=(extra[0], extra[1])
    )


def _bilinear(n_in: int, n_out: int, dst: tuple[int, int]) -> nn.Module:
    # The seed's checkerboard-free alternative; `size` rather than scale 2 so odd sizes land exactly.
    return nn.Sequential(
        nn.Upsample(size=dst, mode="bilinear", align_corners=True), nn.Conv2d(n_in, n_out, kernel_size=3, padding=1)
    )


@register_model(
    "conv",
    "conv stages (16/32/64 channels) + dense bottleneck; --downsample pool|stride, --upsample transpose|bilinear",
    depth="medium",
    latent_dim=32,
    downsample="pool",
    upsample="transpose",
    **_COMMON,
)
def conv_ae(
    input_shape: Shape,
    depth: str,
    latent_dim: int,
    downsample: str,
    upsample: str,
    activation: str,
    output: str,
    batchnorm: bool,
    dropout: float,
) -> Autoencoder:
    c, h, w = input_shape
    channels = CONV_CHANNELS[: CONV_DEPTHS[depth]]
    sizes = [(h, w)]
    encoder: list[nn.Module] = []
    n_in = c
    for ch in channels:
        sh, sw = sizes[-1]
        if downsample == "pool":  # seed Exercise 4, option A
            encoder += [nn.Conv2d(n_in, ch, 3, padding=1), _act(activation), nn.MaxPool2d(2, 2)]
            nxt = (sh // 2, sw // 2)
        else:  # option B: strided conv
            encoder += [nn.Conv2d(n_in, ch, 3, stride=2, padding=1), _act(activation)]
            nxt = ((sh - 1) // 2 + 1, (sw - 1) // 2 + 1)
        if min(nxt) < 1:
            raise BadInput(f"images of {h}x{w} are too small for a {depth} conv encoder")
        encoder += _regularise(ch, batchnorm, dropout, conv=True)
        sizes.append(nxt)
        n_in = ch
    flat = channels[-1] * sizes[-1][0] * sizes[-1][1]
    encoder += [nn.Flatten(), nn.Linear(flat, latent_dim)]
    decoder: list[nn.Module] = [
        nn.Linear(latent_dim, flat),
        _act(activation),
        nn.Unflatten(1, (channels[-1], *sizes[-1])),
    ]
    for i in reversed(range(len(channels))):
        n_out = channels[max(i - 1, 0)]
        up = (
            _transpose(channels[i], n_out, sizes[i + 1], sizes[i])
            if upsample == "transpose"
            else _bilinear(channels[i], n_out, sizes[i])
        )
        decoder += [up, _act(activation), *_regularise(n_out, batchnorm, dropout, conv=True)]
    decoder += [nn.Conv2d(channels[0], c, 3, padding=1), output_activation(output)]
    return Autoencoder(
        input_shape, nn.Sequential(*encoder), nn.Sequential(*decoder), (latent_dim,), output, flatten=False
    )
