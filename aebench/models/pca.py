"""PCA as an autoencoder: the optimal *linear* code of a given size, the baseline every trained model must beat.

An autoencoder that does not reconstruct better than PCA at the same code size has learned nothing a
closed-form projection would not give (it is under-trained, or too constrained), so PCA is fitted and
measured like any run: same data, same metrics, its parameters and FLOPs counted, encode and decode for the
latent pictures. It is fitted in closed form (`fit`), never by the training loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aebench.errors import BadInput
from aebench.models.base import Autoencoder
from aebench.models.registry import register_model

Shape = tuple[int, int, int]

FIT_CHUNK = 8192  # images per float64 covariance update: bounds the memory of the float64 copy


class PCA(Autoencoder):
    """encode: z = Wᵀ(x - μ); decode: x̂ = W z + μ, W the top `latent_dim` principal directions of the
    training images. Until `fit` it is the zero projection onto the mean (all weights zero)."""

    closed_form = True  # the engine fits it instead of training it

    def __init__(self, input_shape: Shape, latent_dim: int) -> None:
        d = math.prod(input_shape)
        if latent_dim > d:
            raise BadInput(f"--latent-dim {latent_dim}: PCA has at most {d} components for {d}-value images")
        encoder, decoder = nn.Linear(d, latent_dim), nn.Linear(latent_dim, d)
        for layer in (encoder, decoder):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        super().__init__(input_shape, encoder, decoder, (latent_dim,), output="none")

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> float:
        """Fit the principal directions of `x` (N, C, H, W) from its float64 covariance; returns the FLOPs spent.

        Eigenvectors have an arbitrary sign; each is turned so its largest entry is positive, so two fits of the
        same data give the same weights.
        """
        flat = x.flatten(1).cpu()  # float64 on the CPU: not every device has it (MPS has none)
        n, d = flat.shape
        mean = flat.sum(0, dtype=torch.float64) / n
        cov = torch.zeros(d, d, dtype=torch.float64)
        for chunk in flat.split(FIT_CHUNK):
            centred = chunk.double() - mean
            cov.addmm_(centred.T, centred)
        _, vectors = torch.linalg.eigh(cov / n)  # ascending eigenvalues
        k = self.latent_size
        top = vectors[:, -k:].flip(1)  # (d, k), largest variance first
        signs = torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
        top = top * signs
        encoder, decoder = self.encoder, self.decoder
        assert isinstance(encoder, nn.Linear) and isinstance(decoder, nn.Linear)
        encoder.weight.copy_(top.T.to(encoder.weight))
        encoder.bias.copy_((-(top.T @ mean)).to(encoder.bias))
        decoder.weight.copy_(top.to(decoder.weight))
        decoder.bias.copy_(mean.to(decoder.bias))
        # mean and covariance (a multiply and an add per product), and eigh's ~9 d^3
        return float(n * d + 2 * n * d * d + 9 * d**3)


@register_model(
    "pca", "baseline: PCA at --latent-dim, the optimal linear autoencoder, fitted in closed form (no training)",
    ends_in="none", latent_dim=32,
)  # fmt: skip
def pca(input_shape: Shape, latent_dim: int) -> Autoencoder:
    return PCA(input_shape, latent_dim)
