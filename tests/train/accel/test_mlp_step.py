"""The written-out MLP step equals autograd's: gradients of one step, and whole training runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from aebench import data
from aebench.errors import Diverged
from aebench.models.base import Autoencoder
from aebench.models.registry import create_model
from aebench.train.accel import mlp_step, onednn
from aebench.train.accel.mlp_step import FlatAdam, MLPStep, applies, flat_parameters, mlp_layers
from aebench.train.loop import LOSSES, autocast_for, make_optimizer, train_epochs
from aebench.train.pretrain import greedy_pretrain

CPU = torch.device("cpu")
SHAPE = (1, 28, 28)


def _mlp(hidden_act: nn.Module, output_act: nn.Module) -> Autoencoder:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(784, 64), hidden_act, nn.Linear(64, 8))
    dec = nn.Sequential(nn.Linear(8, 64), hidden_act, nn.Linear(64, 784), output_act)
    return Autoencoder(SHAPE, enc, dec, (8,))


def _batch(fashion_mnist: data.Dataset, n: int = 200) -> torch.Tensor:
    return data.to_device(fashion_mnist.train.images[:n], CPU, "sigmoid")


def _autograd_grads(model: nn.Module, x: torch.Tensor, loss: str, precision: str) -> tuple[float, list[torch.Tensor]]:
    with autocast_for(CPU, precision):
        out = model(x)
    value = LOSSES[loss](out.float(), x)
    model.zero_grad(set_to_none=True)
    value.backward()
    return float(value.detach()), [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]


def _written_grads(model: nn.Module, x: torch.Tensor, loss: str, precision: str) -> tuple[float, list[torch.Tensor]]:
    layers = mlp_layers(model, x.dim())
    assert layers is not None
    running = torch.zeros(())
    with flat_parameters(model) as flat:
        opt = torch.optim.SGD([flat.flat], lr=0.0)  # a no-op update: the gradients are what is compared
        step = MLPStep(
            layers, flat, x, loss=loss, precision=precision, batch_size=len(x), optimizer=opt, grad_clip=None,
            running=running,
        )  # fmt: skip
        step(torch.arange(len(x)))
        grads = [g.clone() for g in flat.grads]
    return float(running) / len(x), grads


_CASES = [
    (hidden, output, loss)
    for hidden, output, losses in [
        (nn.ReLU, nn.Sigmoid, ("mse", "bce", "l1")),
        (lambda: nn.LeakyReLU(0.1), nn.Tanh, ("mse", "l1")),  # bce needs outputs in [0, 1]
        (nn.Tanh, nn.Identity, ("mse", "l1")),
    ]
    for loss in losses
]


@pytest.mark.parametrize(("hidden", "output", "loss"), _CASES)
def test_one_step_has_autograds_loss_and_gradients(
    fashion_mnist: data.Dataset, hidden: Callable[[], nn.Module], output: Callable[[], nn.Module], loss: str
) -> None:
    x = _batch(fashion_mnist)
    for precision, tol in (("fp32", 1e-5), ("bf16", 2e-2)):
        model = _mlp(hidden(), output())
        want_loss, want = _autograd_grads(model, x, loss, precision)
        got_loss, got = _written_grads(model, x, loss, precision)
        assert got_loss == pytest.approx(want_loss, rel=tol)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == torch.float32 and g.shape == w.shape
            # relative to the gradient's scale: a bf16 gradient has 3 significant digits
            assert (g - w).abs().max() <= tol * w.abs().max() + 1e-9, precision


@pytest.mark.parametrize(("precision", "schedule"), [("fp32", "cosine"), ("fp32", "step"), ("bf16", "cosine")])
def test_training_equals_the_autograd_step(
    fashion_mnist: data.Dataset, monkeypatch: pytest.MonkeyPatch, precision: str, schedule: str
) -> None:
    x = data.to_device(fashion_mnist.train.images[:1000], CPU, "sigmoid")
    x_test = data.to_device(fashion_mnist.test.images[:500], CPU, "sigmoid")
    written_steps = 0
    real_call = MLPStep.__call__

    def counted(self: MLPStep, idx: torch.Tensor) -> None:
        nonlocal written_steps
        written_steps += 1
        real_call(self, idx)

    monkeypatch.setattr(MLPStep, "__call__", counted)
    runs = []
    for written in (True, False):
        torch.manual_seed(1)
        model = create_model("seed-ae", SHAPE)
        records = train_epochs(
            model, x, x_test, loss="mse", lr=1e-3, batch_size=128, epochs=3, generator=torch.Generator().manual_seed(0),
            weight_decay=1e-4, grad_clip=1.0, lr_schedule=schedule, precision=precision, written_step=written,
        )  # fmt: skip
        runs.append((records, model))
        assert written_steps == 3 * 8  # the written step trained the first run, and only it
    (written_records, written_model), (taped_records, taped_model) = runs
    tol = 1e-5 if precision == "fp32" else 2e-2
    for a, b in zip(written_records, taped_records, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=tol)
        assert a.test_loss == pytest.approx(b.test_loss, rel=tol)
        assert a.lr == b.lr
    for p, q in zip(written_model.parameters(), taped_model.parameters(), strict=True):
        assert p.is_contiguous() and p.untyped_storage().nbytes() == p.numel() * 4  # its own storage again
        if precision == "fp32":
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        else:  # bf16 rounding differs by where a sum is cast; the weights stay close
            assert (p - q).abs().max() <= 0.05 * q.abs().max()


def test_parameters_get_their_own_storage_back_when_a_run_diverges(fashion_mnist: data.Dataset) -> None:
    x = data.to_device(fashion_mnist.train.images[:300], CPU, "sigmoid")
    x[7, 0, 0, 0] = float("nan")
    model = create_model("seed-ae", SHAPE)
    with pytest.raises(Diverged):
        train_epochs(model, x, None, loss="mse", lr=1e-3, batch_size=128, epochs=1,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(storages) == len(list(model.parameters()))


def test_which_models_take_the_written_step() -> None:
    x = torch.zeros(4, *SHAPE)
    for name in ("seed-ae", "seed-simple"):
        assert applies(create_model(name, SHAPE), x, "mse")
    assert applies(create_model("seed-flexible", SHAPE, latent_dim=8), x, "bce")
    assert applies(create_model("fc", SHAPE, depth="deep"), x, "l1")
    assert not applies(create_model("seed-deep", SHAPE), x, "mse")  # batch norm and dropout
    assert not applies(create_model("seed-conv", SHAPE), x, "mse")
    assert not applies(create_model("fc", SHAPE, activation="gelu"), x, "mse")
    assert not applies(create_model("seed-ae", SHAPE), x.to("meta"), "mse")  # CPU only
    flat_rows = torch.zeros(4, 784)
    pair = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 784), nn.Sigmoid())
    assert applies(pair, flat_rows, "mse") and not applies(pair, x, "mse")  # a bare Sequential needs flat rows
    tied = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    tied.append(tied[0])
    assert not applies(tied, torch.zeros(4, 8), "mse")
    frozen = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    frozen[0].bias.requires_grad_(False)
    assert not applies(frozen, torch.zeros(4, 8), "mse")
    mixed = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    mixed[2].double()  # autograd refuses the mixed dtypes; the written step must not hide them
    assert not applies(mixed, torch.zeros(4, 8), "mse")
    hooked = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    handle = hooked[2].register_forward_hook(lambda mod, inp, out: out + 3.0)
    assert not applies(hooked, torch.zeros(4, 8), "mse")  # the written step runs no hooks
    handle.remove()
    assert applies(hooked, torch.zeros(4, 8), "mse")
    hooked[0].weight.register_hook(lambda g: g * 2)
    assert not applies(hooked, torch.zeros(4, 8), "mse")

    class Shifted(Autoencoder):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1.0

    base = create_model("seed-ae", SHAPE)
    assert isinstance(base, Autoencoder)
    shifted = Shifted(SHAPE, base.encoder, base.decoder, base.latent_shape)
    assert not applies(shifted, x, "mse")  # a subclass may compute something else


def test_greedy_pretraining_equals_the_autograd_step(
    fashion_mnist: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretraining trains layer pairs (a bare Sequential sharing the model's Linear layers)."""
    x = data.to_device(fashion_mnist.train.images[:600], CPU, "sigmoid")
    models = []
    for written in (True, False):
        if not written:
            monkeypatch.setattr(mlp_step, "written_layers", lambda *args: None)
        torch.manual_seed(0)
        model = create_model("fc", SHAPE, depth="medium", latent_dim=16)
        greedy_pretrain(model, x, epochs=1, lr=1e-3, batch_size=128, generator=torch.Generator().manual_seed(0))
        models.append(model)
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    storages = {p.untyped_storage().data_ptr() for p in models[0].parameters()}
    assert len(storages) == len(list(models[0].parameters()))


def test_flat_adam_equals_torch_adam_over_the_separate_tensors() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opt_a = make_optimizer(a.parameters(), 1e-2, 1e-3, CPU)
    with flat_parameters(b) as flat:
        opt_b = FlatAdam(flat.flat, 1e-2, 1e-3)
        for _ in range(4):
            grads = [torch.randn_like(p) for p in a.parameters()]
            for p, g in zip(a.parameters(), grads, strict=True):
                p.grad = g.clone()
            for view, g in zip(flat.grads, grads, strict=True):
                view.copy_(g)
            opt_a.step()
            opt_b.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.skipif(not onednn.available(torch.bfloat16), reason="this torch has no oneDNN bf16 linear")
@pytest.mark.parametrize("act", [None, nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.LeakyReLU(0.1), nn.Identity()])
def test_bf16_linear_through_onednn_equals_addmm(act: nn.Module | None) -> None:
    """The bias (and a ReLU) applied in oneDNN's epilogue give autograd's bf16 values exactly."""
    torch.manual_seed(0)
    h = torch.randn(128, 400).bfloat16()
    weight, bias = torch.randn(300, 400).mul_(0.05).bfloat16(), torch.randn(300).bfloat16()
    affine, forward, _ = mlp_step.affine_fns(weight, bias, act, batch=128)
    got = forward(affine(h))
    expected = nn.functional.linear(h, weight, bias)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, act(expected) if act is not None else expected)


@pytest.mark.skipif(not onednn.available(torch.float32), reason="this torch has no oneDNN linear")
def test_large_fp32_products_go_to_onednn_and_agree_with_torch(onednn_calls: list[int]) -> None:
    torch.manual_seed(0)
    weight, bias = torch.randn(400, 784).mul_(0.05), torch.randn(400)
    h, g = torch.rand(128, 784), torch.randn(128, 400)
    assert onednn.worth_it(128, 784, 400, torch.float32) and not onednn.worth_it(128, 400, 20, torch.float32)
    assert not onednn.worth_it(128, 784, 400, torch.bfloat16)  # bf16 products already go to oneDNN
    affine, forward, _ = mlp_step.affine_fns(weight, bias, nn.ReLU(), batch=128)
    torch.testing.assert_close(forward(affine(h)), torch.addmm(bias, h, weight.t()).relu(), rtol=1e-5, atol=1e-5)
    weight_grad = torch.empty_like(weight)
    input_grad, weight_grad_into = mlp_step.gradient_fns(weight, weight_grad, batch=128)
    weight_grad_into(g, h)
    torch.testing.assert_close(weight_grad, g.t() @ h, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(input_grad(g), g @ weight, rtol=1e-5, atol=1e-5)
    assert onednn_calls[0] == 3  # forward, weight gradient, input gradient


@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
def test_loss_and_its_gradient_are_autograds(loss: str) -> None:
    """The written loss gradient is what autograd's backward gives the bf16 output under autocast."""
    torch.manual_seed(0)
    target = torch.rand(64, 784)
    out = torch.rand(64, 784).bfloat16()
    if loss == "bce":  # autocast runs binary cross-entropy in fp32: its input arrives as fp32
        out = out.float()
    leaf = out.clone().requires_grad_()
    reference = LOSSES[loss](leaf.float(), target)
    reference.backward()
    assert leaf.grad is not None
    value, grad = mlp_step.loss_and_grad(loss, out, target, torch.bfloat16)
    torch.testing.assert_close(value, reference.detach(), rtol=1e-6, atol=0.0)  # summed in another order
    assert grad.dtype == torch.bfloat16
    assert torch.equal(grad, leaf.grad.to(torch.bfloat16))
    assert grad.abs().sum() > 0  # a gradient, not zeros that any loss would match
