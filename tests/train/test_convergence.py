"""Early stopping on the validation holdout, and the figures that say whether a run had finished learning."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.errors import BadInput
from aebench.train.convergence import best_epoch, converged, still_improving
from aebench.train.engine import run_one


def test_still_improving_is_the_recent_fall_in_percent_an_epoch() -> None:
    # 1.0 -> 0.729 over the last three epochs is 10% an epoch (0.9^3 = 0.729)
    assert still_improving([2.0, 1.0, 0.9, 0.81, 0.729]) == pytest.approx(10.0)
    assert still_improving([1.0, 0.5]) == pytest.approx(50.0)  # fewer epochs than the window: what there is
    assert still_improving([1.0, 1.1, 1.21, 1.331]) == pytest.approx(-10.0)  # rising: negative
    assert math.isnan(still_improving([0.3])) and math.isnan(still_improving([]))
    assert converged(0.2) and not converged(2.0) and not converged(math.nan)


def test_best_epoch_counts_only_improvements_by_min_delta() -> None:
    losses = [1.0, 0.8, 0.7995, 0.795, 0.797]
    assert best_epoch(losses) == 4
    assert best_epoch(losses, min_delta=0.01) == 2  # 0.7995 and 0.795 are within 1% of 0.8
    assert best_epoch([math.nan]) is None


def _noisy_test_split(ds: data.Dataset) -> data.Dataset:
    noise = torch.randint(0, 256, ds.test.images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    return dataclasses.replace(ds, test=dataclasses.replace(ds.test, images=noise))


@pytest.mark.slow
def test_nothing_is_chosen_on_the_test_split(fashion_mnist: data.Dataset) -> None:
    """The stopping epoch and the weights kept are the same when the test split is replaced by noise: early
    stopping watches the validation holdout (a part of the training split), never the test split."""
    cfg = RunConfig(model=model_spec("fc", depth="shallow", latent_dim=32), train_size=600, epochs=40, patience=2,
                    min_delta=0.01, batch_size=32)  # fmt: skip
    real = run_one(cfg, device="cpu", dataset=fashion_mnist)
    noisy = run_one(cfg, device="cpu", dataset=_noisy_test_split(fashion_mnist))
    assert real.metrics["epochs_run"] < cfg.epochs  # it stopped on the plateau, before the cap
    for key in ("epochs_run", "best_epoch", "train_steps"):
        assert real.metrics[key] == noisy.metrics[key], key
    assert [r.val_loss for r in real.epochs] == [r.val_loss for r in noisy.epochs]
    assert [r.test_loss for r in real.epochs] != [r.test_loss for r in noisy.epochs]  # the noise was seen, and ignored
    for (name, a), b in zip(real.model.state_dict().items(), noisy.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the weights kept are the best validation epoch's, not the last epoch's
    best = real.metrics["best_epoch"]
    assert best < real.metrics["epochs_run"]
    assert real.metrics["still_improving"] < 2.0  # a plateau: its last epochs barely moved


@pytest.mark.slow
def test_greedy_pretraining_at_equal_steps_takes_the_plain_runs_budget(fashion_mnist: data.Dataset) -> None:
    base = RunConfig(model=model_spec("fc", depth="deep", latent_dim=16), train_size=1024, epochs=6)
    plain = run_one(base, device="cpu", dataset=fashion_mnist)
    greedy_spec = model_spec("fc", depth="deep", latent_dim=16, pretrain="greedy")
    extra = run_one(dataclasses.replace(base, model=greedy_spec), device="cpu", dataset=fashion_mnist)
    equal = run_one(dataclasses.replace(base, model=greedy_spec, equal_steps=True), device="cpu", dataset=fashion_mnist)
    per_epoch = math.ceil(1024 * 0.9 / 128)  # the validation holdout is a tenth of the training images
    assert plain.metrics["train_steps"] == 6 * per_epoch
    layers = 5  # fc deep: 512, 384, 256, 128, then the code
    assert extra.metrics["train_steps"] == (6 + layers) * per_epoch and len(extra.epochs) == 6
    assert equal.metrics["train_steps"] == plain.metrics["train_steps"] and len(equal.epochs) == 6 - layers
    assert plain.metrics["train_flops"] > 0 and extra.metrics["train_flops"] > plain.metrics["train_flops"]


def test_early_stopping_options_are_checked() -> None:
    spec = model_spec("fc")
    with pytest.raises(BadInput, match="--patience needs a validation holdout"):
        RunConfig(model=spec, patience=3, val_fraction=0.0)
    with pytest.raises(BadInput, match="--val-fraction: 0.7 is not allowed"):
        RunConfig(model=spec, val_fraction=0.7)
    with pytest.raises(BadInput, match="--equal-steps needs --pretrain greedy"):
        RunConfig(model=spec, equal_steps=True)
    with pytest.raises(BadInput, match="--patience: 0 is not allowed"):
        RunConfig(model=spec, patience=0)
