"""oneDNN's products give torch's values (to fp32 rounding), and lending them to a model leaves no trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aebench.train.accel import onednn

pytestmark = pytest.mark.skipif(not onednn.available(torch.float32), reason="this torch has no oneDNN linear")


def _layer() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(784, 400)


def test_linear_forward_and_gradients_equal_nn_linear(onednn_calls: list[int]) -> None:
    layer = _layer()
    x = torch.rand(2, 64, 784, requires_grad=True)  # leading dims are flattened and restored
    assert onednn.worth_it(128, 784, 400, torch.float32)
    results = []
    for lend in (False, True):
        layer.zero_grad()
        x.grad = None
        if lend:
            with onednn.linears(layer):
                assert type(layer) is onednn.Linear
                out = layer(x)
        else:
            out = layer(x)
        out.square().sum().backward()
        results.append((out.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()))  # type: ignore[union-attr]
    assert onednn_calls[0] == 3  # the forward product, the input's and the weight's gradient: all through oneDNN
    for ours, torchs in zip(results[1], results[0], strict=True):
        assert ours.shape == torchs.shape
        torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-3)


def test_under_autocast_and_for_small_products_the_layer_is_plain_f_linear(onednn_calls: list[int]) -> None:
    layer = _layer()
    x = torch.rand(128, 784)
    with onednn.linears(layer), torch.autocast("cpu", dtype=torch.bfloat16):
        lent = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = layer(x)
    assert lent.dtype == torch.bfloat16 and torch.equal(lent, plain)
    small = nn.Linear(400, 20)
    x_small = torch.rand(128, 400)
    with onednn.linears(small):
        assert torch.equal(small(x_small), nn.functional.linear(x_small, small.weight, small.bias))
    assert onednn_calls[0] == 0


def test_lending_keeps_the_parameters_and_gives_the_class_back_even_after_an_error() -> None:
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Sequential(nn.Linear(400, 784)))
    params = list(model.parameters())
    with pytest.raises(RuntimeError, match="boom"), onednn.linears(model):
        assert [type(m) for m in model.modules() if isinstance(m, nn.Linear)] == [onednn.Linear] * 2
        assert list(model.parameters()) == params
        raise RuntimeError("boom")
    assert [type(m) for m in model.modules() if isinstance(m, nn.Linear)] == [nn.Linear] * 2
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.0.weight", "2.0.bias"}


def test_double_backward_through_a_lent_layer_refuses_instead_of_dropping_terms() -> None:
    layer = _layer()
    x = torch.rand(128, 784, requires_grad=True)
    with onednn.linears(layer):
        (grad_x,) = torch.autograd.grad(layer(x).tanh().sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="differentiate twice"):
            grad_x.square().sum().backward()


def test_training_lends_onednn_on_the_cpu_fp32_autograd_step_only(
    onednn_calls: list[int], fashion_mnist: object
) -> None:
    from aebench import data
    from aebench.models.registry import create_model
    from aebench.train.loop import train_epochs

    assert isinstance(fashion_mnist, data.Dataset)
    x = data.to_device(fashion_mnist.train.images[:256], torch.device("cpu"), "sigmoid")
    for precision, expect_calls in (("fp32", True), ("bf16", False)):
        before = onednn_calls[0]
        torch.manual_seed(0)
        model = create_model("seed-deep", (1, 28, 28))  # batch norm and dropout: the autograd step
        train_epochs(
            model, x, None, loss="mse", lr=1e-3, batch_size=128, epochs=1,
            generator=torch.Generator().manual_seed(0), precision=precision,
        )  # fmt: skip
        assert (onednn_calls[0] > before) is expect_calls
        assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))
