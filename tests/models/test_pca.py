"""PCA, the optimal linear autoencoder: fitted in closed form, equal to scikit-learn's, and the published figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SklearnPCA
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.errors import BadInput
from aebench.models import create_model

runner = CliRunner()


def test_pca_reconstructs_as_scikit_learns_and_fits_the_same_twice() -> None:
    digits = load_digits().images.astype(np.float64) / 16.0  # real 8 x 8 digits, on [0, 1]
    x = torch.tensor(digits, dtype=torch.float32).unsqueeze(1)
    train, test = x[:1200], x[1200:]
    model = create_model("pca", (1, 8, 8), latent_dim=10)
    flops = model.fit(train)
    assert flops > 0 and model.latent_size == 10
    with torch.no_grad():
        ours = model(test).flatten(1).double().numpy()
    theirs = SklearnPCA(n_components=10, svd_solver="full").fit(train.flatten(1).numpy())
    expected = theirs.inverse_transform(theirs.transform(test.flatten(1).numpy()))
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    codes = model.encode(test)
    assert codes.shape == (len(test), 10) and torch.allclose(model.decode(codes), model(test))
    again = create_model("pca", (1, 8, 8), latent_dim=10)
    again.fit(train)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # eigenvectors' signs fixed: the same data gives the same weights


def test_pca_has_no_more_components_than_pixels() -> None:
    with pytest.raises(BadInput, match="PCA has at most 64 components"):
        create_model("pca", (1, 8, 8), latent_dim=65)


@pytest.mark.slow
def test_pca_gives_the_published_figures(tmp_path: Path, shared_mnist: Path) -> None:
    """Fashion-MNIST at 32 components: 0.0151 per pixel; MNIST at 30: 13.87 squared error per test image, the
    figure Hinton & Salakhutdinov (Science, 2006, Fig. 2B) give for PCA (0.01769 per pixel). No training loop."""
    fashion = runner.invoke(app, ["train", "--arch", "pca", "--latent-dim", "32", "--device", "cpu", "--json",
                                  "--results", str(tmp_path / "f")])  # fmt: skip
    assert fashion.exit_code == 0, fashion.output
    row = json.loads(fashion.stdout)
    assert f"{row['test_mse']:.3g}" == "0.0151" and row["epochs_run"] == 0 and row["train_steps"] == 0
    assert row["params"] == 2 * 784 * 32 + 32 + 784 and row["train_flops"] > 0 and row["curve"] == []
    mnist = runner.invoke(app, ["train", "--arch", "pca", "--latent-dim", "30", "--dataset", "mnist", "--data-dir",
                                str(shared_mnist), "--device", "cpu", "--json",
                                "--results", str(tmp_path / "m")])  # fmt: skip
    assert mnist.exit_code == 0, mnist.output
    row = json.loads(mnist.stdout)
    assert f"{row['test_sse']:.2f}" == "13.87" and f"{row['test_mse']:.4g}" == "0.01769"
