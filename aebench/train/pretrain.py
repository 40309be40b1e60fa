"""Greedy layer-wise pretraining (seed Part 3) for `fc` models, before end-to-end fine-tuning.

Each layer pair is trained as a one-hidden-layer autoencoder on the codes of the layers
below it, in place: the model's own encoder Linear and its mirrored decoder Linear are
the pair, so nothing has to be copied back. The seed stacks only the encoders; training
the mirrored decoder too gives fine-tuning a decoder that already inverts each layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aebench.models.base import Autoencoder, activation, output_activation
from aebench.train.loop import Progress, train_epochs


def _pairs(model: Autoencoder) -> list[tuple[nn.Linear, nn.Linear]]:
    enc = [m for m in model.encoder.children() if isinstance(m, nn.Linear)]
    dec = [m for m in model.decoder.children() if isinstance(m, nn.Linear)]
    return list(zip(enc, reversed(dec), strict=True))


def _hidden_activation(model: Autoencoder) -> nn.Module:
    for module in model.encoder.children():
        if not isinstance(module, nn.Linear | nn.BatchNorm1d | nn.Dropout):
            return module
    return activation("relu")


def pretrain_steps(model: Autoencoder, n: int, batch_size: int, epochs: int) -> int:
    return len(_pairs(model)) * epochs * math.ceil(n / batch_size)


def pretrain_flops(model: Autoencoder, n: int, epochs: int) -> float:
    """FLOPs greedy pretraining spends: each layer pair's two products (2 FLOPs a multiply-add) forward, about
    three times that with the backward pass, for every image of every epoch."""
    per_image = sum(2 * 2 * enc.in_features * enc.out_features for enc, _ in _pairs(model))
    return 3.0 * per_image * n * epochs


def greedy_pretrain(
    model: Autoencoder,
    x: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    progress: Progress | None = None,
    total_steps: int | None = None,
    written_step: bool = True,
) -> None:
    pairs = _pairs(model)
    act = _hidden_activation(model)
    h = x.flatten(1)
    steps_per_layer = epochs * math.ceil(len(h) / batch_size)
    for i, (enc, dec) in enumerate(pairs):
        last = i == len(pairs) - 1
        # The first pair reconstructs pixels (the model's output activation); deeper
        # pairs reconstruct hidden activations (the hidden activation), as in the seed.
        layer_ae = nn.Sequential(
            enc, nn.Identity() if last else act, dec, output_activation(model.output) if i == 0 else act
        )
        train_epochs(
            layer_ae, h, None, loss="mse", lr=lr, batch_size=batch_size, epochs=epochs, generator=generator,
            progress=progress, step_offset=i * steps_per_layer, total_steps=total_steps,
            label=f"pretrain layer {i + 1}/{len(pairs)}", written_step=written_step,
        )  # fmt: skip
        with torch.no_grad():  # codes for the next layer, computed once for the whole set
            h = torch.cat([(enc(c) if last else act(enc(c))) for c in h.split(4096)])
