"""On a GPU: the CUDA-graph step gives what the eager step gives, stacked or not.

These run only where CUDA is (CI has none; the device checks run them on a lent GPU).
"""

from __future__ import annotations

import pytest
import torch

from aebench import data
from aebench.models.registry import create_model
from aebench.train.loop import EpochRecord, train_epochs
from aebench.train.stacked import train_stacked

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def _split(ds: data.Dataset, n: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    train, test = ds.train.images[:n], ds.test.images[:n_test]
    return data.to_device(train, CUDA, "sigmoid"), data.to_device(test, CUDA, "sigmoid")


def _train(
    arch: str, x: torch.Tensor, x_test: torch.Tensor, graph: bool, **kw: object
) -> tuple[torch.nn.Module, list[EpochRecord]]:
    torch.manual_seed(0)
    model = create_model(arch, (1, 28, 28)).to(CUDA)
    gen = torch.Generator(device=CUDA).manual_seed(0)
    records = train_epochs(model, x, x_test, loss="mse", lr=1e-3, batch_size=128, epochs=2, generator=gen,
                           cuda_graph=graph, **kw)  # type: ignore[arg-type]  # fmt: skip
    return model, records


@pytest.mark.parametrize(
    ("arch", "kw", "rel"),
    [
        ("seed-ae", {}, 1e-5),
        ("seed-conv", {}, 1e-5),
        # cuDNN's BatchNorm and conv backward kernels are not bit-reproducible: two eager runs
        # already differ by 1e-7 to 1e-5 relative after 16 steps, so the graph gets 1e-3.
        ("seed-deepconv", {}, 1e-3),
        ("seed-deep", {}, 1e-3),  # dropout: the graph's random masks follow the eager sequence
        ("seed-ae", {"precision": "bf16"}, 1e-5),
        ("seed-ae", {"lr_schedule": "cosine", "grad_clip": 1.0, "weight_decay": 1e-4}, 1e-5),
    ],
)
def test_graph_equals_eager(fashion_mnist: data.Dataset, arch: str, kw: dict[str, object], rel: float) -> None:
    x, x_test = _split(fashion_mnist, 1000, 500)  # 7 full batches and a partial one per epoch
    eager, eager_records = _train(arch, x, x_test, False, **kw)
    graphed, graph_records = _train(arch, x, x_test, True, **kw)
    assert [r.cuda_graph for r in graph_records] == [True, True]
    assert not any(r.cuda_graph for r in eager_records)
    for a, b in zip(eager_records, graph_records, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=rel)
        assert b.test_loss == pytest.approx(a.test_loss, rel=rel)
        assert b.lr == pytest.approx(a.lr)
    if rel <= 1e-5:  # reproducible kernels: the weights match too (not worth comparing where they are not)
        for name, p in eager.state_dict().items():
            torch.testing.assert_close(graphed.state_dict()[name], p, rtol=1e-3, atol=1e-6, msg=name)


def test_graphed_stack_equals_independent_graphed_runs(fashion_mnist: data.Dataset) -> None:
    x, x_test = _split(fashion_mnist, 1000, 500)
    runs = [(0, 1e-3, "mse"), (1, 3e-3, "bce"), (2, 1e-3, "l1")]
    independent = []
    for seed, lr, loss in runs:
        torch.manual_seed(seed)
        model = create_model("seed-ae", (1, 28, 28)).to(CUDA)
        gen = torch.Generator(device=CUDA).manual_seed(seed)
        independent.append(train_epochs(model, x, x_test, loss=loss, lr=lr, batch_size=128, epochs=2, generator=gen))
    models = []
    for seed, _, _ in runs:
        torch.manual_seed(seed)
        models.append(create_model("seed-ae", (1, 28, 28)).to(CUDA))
    stacked = train_stacked(
        models, x, x_test, losses=[r[2] for r in runs], lrs=[r[1] for r in runs], batch_size=128, epochs=2,
        generators=[torch.Generator(device=CUDA).manual_seed(r[0]) for r in runs],
    )  # fmt: skip
    for alone, together in zip(independent, stacked, strict=True):
        assert together[-1].cuda_graph
        for a, b in zip(alone, together, strict=True):
            # batched GEMMs may sum in another order than single ones on a GPU: equal up to rounding
            assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
            assert b.test_loss == pytest.approx(a.test_loss, rel=1e-3)
