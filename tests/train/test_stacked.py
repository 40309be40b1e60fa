"""A stacked run must equal the independent runs it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aebench import data
from aebench.config import RunConfig, model_spec
from aebench.models.registry import create_model
from aebench.train.loop import train_epochs
from aebench.train.stacked import stack_key, stackable, train_stacked

SEEDS = (0, 1, 2)


@pytest.mark.parametrize(("arch", "options"), [("seed-ae", {}), ("conv", {"depth": "shallow", "latent_dim": 8})])
def test_stacked_equals_independent_runs(fashion_mnist: data.Dataset, arch: str, options: dict[str, object]) -> None:
    cpu = torch.device("cpu")
    x = data.to_device(fashion_mnist.train.images[:600], cpu, "sigmoid")
    x_test = data.to_device(fashion_mnist.test.images[:300], cpu, "sigmoid")

    def build(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(arch, (1, 28, 28), **options)

    independent = []
    for seed in SEEDS:
        model = build(seed)
        records = train_epochs(model, x, x_test, loss="mse", lr=1e-3, batch_size=128, epochs=2,
                               generator=torch.Generator().manual_seed(seed))  # fmt: skip
        independent.append((model, records))
    models = [build(seed) for seed in SEEDS]
    stacked = train_stacked(models, x, x_test, losses=["mse"] * 3, lrs=[1e-3] * 3, batch_size=128, epochs=2,
                            generators=[torch.Generator().manual_seed(s) for s in SEEDS])  # fmt: skip
    for (model, records), stacked_model, stacked_records in zip(independent, models, stacked, strict=True):
        for a, b in zip(records, stacked_records, strict=True):
            assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
            assert b.test_loss == pytest.approx(a.test_loss, rel=1e-4)
        for p, q in zip(model.parameters(), stacked_model.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5)
    assert len({r[-1].train_loss for r in stacked}) == len(SEEDS)  # three different runs, not one copied


# Three runs that differ in everything a stack may mix: seed, learning rate, weight decay, loss.
MIXED = [
    {"seed": 0, "lr": 1e-3, "weight_decay": 0.0, "loss": "mse"},
    {"seed": 1, "lr": 3e-3, "weight_decay": 1e-4, "loss": "bce"},
    {"seed": 2, "lr": 5e-4, "weight_decay": 0.0, "loss": "l1"},
]


def test_stack_mixing_lrs_losses_and_decay_equals_independent_runs(fashion_mnist: data.Dataset) -> None:
    cpu = torch.device("cpu")
    x = data.to_device(fashion_mnist.train.images[:500], cpu, "sigmoid")
    x_test = data.to_device(fashion_mnist.test.images[:200], cpu, "sigmoid")

    def build(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model("seed-ae", (1, 28, 28))

    independent = []
    for run in MIXED:
        model = build(int(run["seed"]))  # type: ignore[call-overload]
        records = train_epochs(
            model, x, x_test, loss=str(run["loss"]), lr=float(run["lr"]), batch_size=100, epochs=2,
            weight_decay=float(run["weight_decay"]), generator=torch.Generator().manual_seed(int(run["seed"])),
        )  # fmt: skip
        independent.append((model, records))
    models = [build(int(r["seed"])) for r in MIXED]  # type: ignore[call-overload]
    stacked = train_stacked(
        models, x, x_test, losses=[str(r["loss"]) for r in MIXED], lrs=[float(r["lr"]) for r in MIXED],
        weight_decays=[float(r["weight_decay"]) for r in MIXED], batch_size=100, epochs=2,
        generators=[torch.Generator().manual_seed(int(r["seed"])) for r in MIXED],  # type: ignore[call-overload]
    )  # fmt: skip
    for (model, records), stacked_model, stacked_records in zip(independent, models, stacked, strict=True):
        for a, b in zip(records, stacked_records, strict=True):
            assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
            assert b.test_loss == pytest.approx(a.test_loss, rel=1e-4)
            assert b.lr == a.lr
        for p, q in zip(model.parameters(), stacked_model.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5)


def test_what_can_be_stacked() -> None:
    plain = RunConfig(model=model_spec("fc", depth="shallow"))
    assert stackable(plain, create_model("fc", (1, 28, 28), depth="shallow"))
    assert not stackable(plain, create_model("seed-deep", (1, 28, 28)))  # BatchNorm and Dropout
    assert not stackable(RunConfig(model=model_spec("fc"), grad_clip=1.0), create_model("fc", (1, 28, 28)))
    assert stack_key(plain) == stack_key(RunConfig(model=model_spec("fc", depth="shallow"), seed=5))
    mixed = RunConfig(model=model_spec("fc", depth="shallow"), lr=1e-2, loss="bce", weight_decay=1e-4, seed=3)
    assert stack_key(plain) == stack_key(mixed)  # a stack mixes seeds, learning rates, losses and decay
    assert stack_key(plain) != stack_key(RunConfig(model=model_spec("fc", depth="shallow"), batch_size=64))
    assert stack_key(plain) != stack_key(RunConfig(model=model_spec("fc", depth="medium")))


@pytest.mark.slow
def test_compare_stacks_seeds_and_matches_unstacked(tmp_path: Path) -> None:
    from aebench.config import GridSpec, ModelSpec
    from aebench.grid.runner import run_grid

    configs = GridSpec(depths=("shallow",), seeds=3, base=RunConfig(model=ModelSpec(arch="fc"), epochs=1,
                       train_size=800)).expand()  # fmt: skip
    stacked = run_grid(configs, tmp_path / "stacked", device="cpu", allow_download=False, stack=True)
    plain = run_grid(configs, tmp_path / "plain", device="cpu", allow_download=False)  # no stacks on a CPU
    assert [o.row["stack_size"] for o in stacked] == [3, 3, 3]
    assert [o.row["stack_size"] for o in plain] == [1, 1, 1]
    for s, p in zip(stacked, plain, strict=True):
        assert s.run_id == p.run_id and s.status == p.status == "done"
        assert s.row["test_mse"] == pytest.approx(p.row["test_mse"], rel=1e-4)


@pytest.mark.slow
def test_a_learning_rate_sweep_stacks_and_keeps_the_rates_that_work(tmp_path: Path) -> None:
    """Cells differing in lr stack together; the one that blows up is recorded as diverged, the
    others train on in the same stack and equal their unstacked runs."""
    from aebench.config import GridSpec, ModelSpec
    from aebench.grid.runner import run_grid

    base = RunConfig(model=ModelSpec(arch="fc"), epochs=1, train_size=512)
    configs = GridSpec(depths=("shallow",), outputs=("none",), lrs=(1e-3, 1e9), seeds=2, base=base).expand()
    stacked = run_grid(configs, tmp_path / "stacked", device="cpu", allow_download=False, stack=True)
    plain = run_grid(configs, tmp_path / "plain", device="cpu", allow_download=False)
    assert [o.status for o in stacked] == [o.status for o in plain] == ["done", "done", "diverged", "diverged"]
    assert [o.row["stack_size"] for o in stacked[:2]] == [4, 4]  # all four cells trained as one stack
    assert all(o.row["diverged_epoch"] == 1 for o in stacked[2:])
    for s, p in zip(stacked[:2], plain[:2], strict=True):
        assert s.row["test_mse"] == pytest.approx(p.row["test_mse"], rel=1e-4)


def test_stacks_pay_on_cuda_only() -> None:
    from aebench.grid.executors import create_executor

    local = create_executor("local")
    assert local.stacks_pay(torch.device("cuda")) and not local.stacks_pay(torch.device("cpu"))
    pytest.importorskip("ray")
    ray_cpu, ray_gpu = create_executor("ray"), create_executor("ray", {"gpus_per_run": 0.25})
    ray_cpu.device("auto")
    ray_gpu.device("auto")
    assert ray_gpu.stacks_pay(None) and not ray_cpu.stacks_pay(None)
