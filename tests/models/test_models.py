"""Every registered model: the shared protocol, and the seed's exact parameter counts."""

from __future__ import annotations

import pytest
import torch

from aebench.errors import BadInput
from aebench.models.base import count_params
from aebench.models.registry import create_model, get_entry, list_models

MNIST_SHAPE = (1, 28, 28)

SEED_PARAMS = {
    "seed-ae": 644_804,
    "seed-simple": 484_944,
    "seed-deep": 1_144_880,
    "seed-conv": 225,
    "seed-deepconv": 83_905,
}
FC_PARAMS_L32 = {"shallow": 209_968, "medium": 1_083_696, "deep": 1_469_744}


@pytest.mark.parametrize("name", list_models())
def test_protocol_forward_backward(name: str) -> None:
    model = create_model(name, MNIST_SHAPE)
    x = torch.rand(4, *MNIST_SHAPE)
    z = model.encode(x)
    assert z.shape[0] == 4 and z[0].numel() == model.latent_size
    model.eval()  # dropout draws new masks each call in training: compare without them
    with torch.no_grad():
        assert torch.equal(model(x), model.decode(model.encode(x)))
    model.train()
    out = model(x)
    assert out.shape == x.shape
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(("name", "params"), SEED_PARAMS.items())
def test_seed_parameter_counts(name: str, params: int) -> None:
    assert count_params(create_model(name, MNIST_SHAPE)) == params


@pytest.mark.parametrize(("latent", "params"), [(64, 435_536), (1024, 928_016)])
def test_seed_flexible_under_and_overcomplete(latent: int, params: int) -> None:
    model = create_model("seed-flexible", MNIST_SHAPE, latent_dim=latent)
    assert count_params(model) == params  # 784*256+256 + 256*L+L + L*256+256 + 256*784+784
    assert model.latent_size == latent


@pytest.mark.parametrize(("depth", "params"), FC_PARAMS_L32.items())
def test_fc_depth_parameter_counts(depth: str, params: int) -> None:
    assert count_params(create_model("fc", MNIST_SHAPE, depth=depth, latent_dim=32)) == params


def test_fc_hidden_widths_and_options() -> None:
    model = create_model("fc", MNIST_SHAPE, hidden=(300, 100), latent_dim=8, batchnorm=True, dropout=0.1,
                         activation="elu", output="tanh")  # fmt: skip
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 300), (300, 100), (100, 8), (8, 100), (100, 300), (300, 784)
    ]  # fmt: skip
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert any(isinstance(m, torch.nn.ELU) for m in model.modules())
    assert isinstance(model.decoder[-1], torch.nn.Tanh)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 20, 24)])
@pytest.mark.parametrize("depth", ["shallow", "medium", "deep"])
@pytest.mark.parametrize("downsample", ["pool", "stride"])
@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_conv_family_reconstructs_input_shape(
    shape: tuple[int, int, int], depth: str, downsample: str, upsample: str
) -> None:
    model = create_model("conv", shape, depth=depth, downsample=downsample, upsample=upsample, latent_dim=16)
    x = torch.rand(2, *shape)
    assert model(x).shape == x.shape
    assert model.encode(x).shape == (2, 16)


def test_stride_has_no_pooling_and_pool_has() -> None:
    pool = create_model("conv", MNIST_SHAPE, downsample="pool")
    stride = create_model("conv", MNIST_SHAPE, downsample="stride")
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in pool.modules())
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in stride.modules())
    assert any(
        isinstance(m, torch.nn.Upsample) for m in create_model("conv", MNIST_SHAPE, upsample="bilinear").modules()
    )


def test_seed_models_take_no_family_options() -> None:
    assert get_entry("seed-ae").options == frozenset()
    with pytest.raises(BadInput, match="does not apply"):
        create_model("seed-ae", MNIST_SHAPE, latent_dim=4)


def test_fixed_size_seed_decoder_refuses_other_shapes() -> None:
    with pytest.raises(BadInput, match="seed-deepconv"):
        create_model("seed-deepconv", (1, 32, 32))


def test_unknown_arch_names_the_choices() -> None:
    with pytest.raises(BadInput, match="unknown arch 'cnn'; choose from: conv, fc, pca, seed-ae"):
        create_model("cnn", MNIST_SHAPE)
