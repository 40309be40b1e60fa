"""What a run is measured by: reconstruction quality, size, cost, speed and latent usefulness.

Quality is always computed on the [0, 1] pixel scale, whatever the output activation,
so runs with tanh or linear outputs stay comparable with sigmoid ones.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from scipy.linalg import LinAlgWarning
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from aebench.data import to_unit
from aebench.models.base import Autoencoder, count_params
from aebench.models.external import NoCodes
from aebench.train.device import synchronize
from aebench.train.loop import EVAL_BATCH

PROBE_TRAIN = 10_000  # train codes the probe is fit on: enough for a stable accuracy, fast on a laptop
INFER_REPEATS = 5


@torch.no_grad()
def reconstruction(model: Autoencoder, x_test: torch.Tensor) -> dict[str, float]:
    """Test-set MSE, BCE, L1 (per pixel), squared error per image, PSNR (dB, from the pooled MSE) and mean SSIM."""
    model.eval()
    psnr = PeakSignalNoiseRatio(data_range=1.0).to(x_test.device)  # pooled over the whole set
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(x_test.device)  # mean over images
    sums = dict.fromkeys(("mse", "bce", "l1"), torch.zeros((), device=x_test.device))
    for chunk in x_test.split(EVAL_BATCH):
        target = to_unit(chunk, model.output)
        recon = to_unit(model(chunk), model.output)
        sums["mse"] = sums["mse"] + F.mse_loss(recon, target, reduction="sum")
        sums["l1"] = sums["l1"] + F.l1_loss(recon, target, reduction="sum")
        clamped = recon.clamp(1e-7, 1 - 1e-7)  # BCE and SSIM need [0, 1]; a linear output can leave it
        sums["bce"] = sums["bce"] + F.binary_cross_entropy(clamped, target, reduction="sum")
        psnr.update(recon, target)
        ssim.update(clamped, target)
    n_pixels = x_test.numel()
    return {
        "test_mse": float(sums["mse"]) / n_pixels,
        # summed over an image's pixels, averaged over images: the "squared error per image" papers report
        "test_sse": float(sums["mse"]) / len(x_test),
        "test_bce": float(sums["bce"]) / n_pixels,
        "test_l1": float(sums["l1"]) / n_pixels,
        "test_psnr": float(psnr.compute()),
        "test_ssim": float(ssim.compute()),  # type: ignore[arg-type]  # a tensor with the default reduction
    }


@torch.no_grad()
def pixel_mse(model: Autoencoder, x_test: torch.Tensor) -> float:
    """Per-pixel MSE on the [0, 1] scale, without the cost of the other measures."""
    model.eval()
    total = sum(float(F.mse_loss(to_unit(model(c), model.output), to_unit(c, model.output), reduction="sum"))
                for c in x_test.split(EVAL_BATCH))  # fmt: skip
    return total / x_test.numel()


def sizes(model: Autoencoder) -> dict[str, Any]:
    input_size = math.prod(model.input_shape)
    return {
        "params": count_params(model),
        "encoder_params": count_params(model.encoder),
        "decoder_params": count_params(model.decoder),
        "latent_size": model.latent_size,
        "compression_ratio": input_size / model.latent_size,
    }


def flops_per_sample(model: Autoencoder) -> int:
    """Forward FLOPs for one image, counted by torch.utils.flop_counter (matmuls and convs)."""
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(1, *model.input_shape, device=param.device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def throughput(epoch_seconds: list[float], n_samples: int) -> dict[str, float]:
    """Training samples/s over the epochs after the first (warm-up); all epochs if there is one."""
    timed = epoch_seconds[1:] or epoch_seconds
    rates = [n_samples / s for s in timed]
    return {
        "train_samples_per_s": statistics.median(rates),
        "train_samples_per_s_min": min(rates),
        "train_samples_per_s_max": max(rates),
        "epoch_seconds": statistics.median(timed),
        "timed_epochs": len(timed),
    }


@torch.no_grad()
def inference_throughput(
    model: Autoencoder, x: torch.Tensor, batch_size: int, precision: str = "fp32"
) -> dict[str, float]:
    """Samples/s of full test-set passes at the training batch size: median, min, max after a warm-up pass."""
    model.eval()
    rates = []
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for repeat in range(INFER_REPEATS + 1):
            synchronize(x.device)
            start = time.perf_counter()
            for chunk in x.split(batch_size):
                model(chunk)
            synchronize(x.device)
            if repeat:  # the first pass warms caches and kernels
                rates.append(len(x) / (time.perf_counter() - start))
    return {
        "infer_samples_per_s": statistics.median(rates),
        "infer_samples_per_s_min": min(rates),
        "infer_samples_per_s_max": max(rates),
    }


@torch.no_grad()
def codes(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode(chunk).flatten(1) for chunk in x.split(EVAL_BATCH)]).float().cpu()


def probe_accuracy(
    model: Autoencoder, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor
) -> float:
    """Test accuracy of a linear probe (ridge classifier on standardised codes) fit on train codes.

    It asks how linearly separable the classes are in the latent space, a common
    proxy for how useful the codes are beyond reconstruction.
    """
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(PROBE_TRAIN, len(x_train))
    if len(torch.unique(y_train[:n])) < 2:  # data without labels (a user's npz: file may have none): no probe
        return math.nan
    try:
        train_codes = codes(model, x_train[:n])
    except NoCodes:  # a user's model without encode/decode: nothing to probe
        return math.nan
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    with warnings.catch_warnings():
        # Wide codes with dead units (seed-conv's 3136) make the normal equations
        # ill-conditioned; the ridge term keeps the solution well defined regardless.
        warnings.simplefilter("ignore", LinAlgWarning)
        probe.fit(train_codes.numpy(), y_train[:n].numpy())
    return float(probe.score(codes(model, x_test).numpy(), y_test.numpy()))


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by tensors during the run. CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
