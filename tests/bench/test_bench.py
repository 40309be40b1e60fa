"""`aebench bench` and the floor: what they compute, never how fast (timings live in benchmarks/)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

from aebench import data
from aebench.bench.floor import Gemm, _direct, _fastest_product, step_gemms, step_layers, time_floor
from aebench.bench.named import parse_model
from aebench.bench.run import EFFICIENCY_NOTE, BenchSpec, _ratios, clock_check, drifted_floors, run_bench
from aebench.cli.app import app
from aebench.cli.render import bench_table, clock_line
from aebench.config import model_spec
from aebench.errors import BadInput
from aebench.models.registry import create_model
from aebench.train.accel import onednn


def test_seed_ae_step_gemms_come_from_its_layer_shapes() -> None:
    gemms = step_gemms(create_model("seed-ae", (1, 28, 28)), (1, 28, 28), 128)
    # per Linear: forward (B x in x out), input gradient (not for the first), weight gradient (in x B x out)
    assert gemms == [
        Gemm(128, 784, 400), Gemm(784, 128, 400),
        Gemm(128, 400, 20), Gemm(128, 20, 400), Gemm(400, 128, 20),
        Gemm(128, 20, 400), Gemm(128, 400, 20), Gemm(20, 128, 400),
        Gemm(128, 400, 784), Gemm(128, 784, 400), Gemm(400, 128, 784),
    ]  # fmt: skip
    forward = 2 * 128 * (784 * 400 + 400 * 20 + 20 * 400 + 400 * 784)
    assert sum(g.flops for g in gemms) == 3 * forward - 2 * 128 * 784 * 400  # no input gradient for layer 1


def test_conv_gemms_are_im2col_shaped() -> None:
    gemms = step_gemms(create_model("seed-conv", (1, 28, 28)), (1, 28, 28), 8)
    assert gemms[0] == Gemm(8 * 28 * 28, 1 * 9, 16)  # Conv2d(1, 16, 3) on 28x28
    assert gemms[2] == Gemm(8 * 14 * 14, 16, 1 * 4)  # ConvTranspose2d(16, 1, 2) from 14x14


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_floor_times_each_product_through_the_faster_library_and_still_computes_it(
    dtype: torch.dtype, tol: float
) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(128, 784, dtype=dtype), torch.randn(784, 400, dtype=dtype)
    c = torch.empty(128, 400, dtype=dtype)
    product, via_onednn = _fastest_product(a, b, c, torch.device("cpu"), calls=2, rounds=2)
    got = product()
    assert isinstance(got, torch.Tensor) and got.shape == (128, 400) and got.dtype == dtype
    expected = (a.double() @ b.double()).float()
    torch.testing.assert_close(got.float(), expected, rtol=tol, atol=tol * expected.abs().max().item())
    assert via_onednn is False or onednn.available(dtype)


def test_floor_counts_the_products_it_took_through_onednn(monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_model("seed-ae", (1, 28, 28))
    gemms = step_gemms(model, (1, 28, 28), 16)
    floor = time_floor(model, (1, 28, 28), 16, steps=4, repeats=1, sample_steps=2)
    assert floor["floor_s_min"] <= floor["floor_s"] <= floor["floor_s_max"]
    torch_mm = torch.mm

    def slow_mm(*args: object, **kwargs: object) -> torch.Tensor:
        time.sleep(0.002)  # far slower than any oneDNN product of this size
        return torch_mm(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "mm", slow_mm)
    slow = time_floor(model, (1, 28, 28), 16, steps=4, repeats=1, sample_steps=2)
    assert slow["floor_onednn_gemms"] == (len(gemms) if onednn.available(torch.float32) else 0)
    monkeypatch.setattr(onednn, "available", lambda dtype: False)
    assert time_floor(model, (1, 28, 28), 16, steps=4, repeats=1, sample_steps=2)["floor_onednn_gemms"] == 0


def test_a_floor_that_moved_between_before_and_after_is_flagged() -> None:
    rows = [
        {"model": "seed-ae", "mode": "floor-fp32", "floor_s_before_after": [0.60, 0.74]},
        {"model": "seed-ae", "mode": "floor-bf16", "floor_s_before_after": [0.38, 0.39]},
        {"model": "seed-ae", "mode": "engine-fp32"},
    ]
    (line,) = drifted_floors(rows)
    assert line.startswith("seed-ae floor-fp32: 0.600 s and 0.740 s") and "rerun" in line
    assert drifted_floors(rows, tolerance=0.3) == []


@pytest.mark.slow
def test_bench_rows_and_ratios(fashion_mnist: object) -> None:
    spec = BenchSpec(models=("seed-ae",), epochs=1, train_size=512, device="cpu", stack=3)
    result = run_bench(spec, check_clock=False)
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {
        "seed-loop", "engine-fp32", "engine-fp32-autograd", "engine-bf16", "engine-bf16-autograd",
        "engine-fp32-stack3", "floor-fp32", "floor-bf16",
    }  # fmt: skip
    for r in rows.values():
        assert 0 < r["epoch_s_min"] <= r["epoch_s"] <= r["epoch_s_max"]  # the spread of every row, floors included
        _assert_range(r)
    assert rows["engine-fp32"]["samples"] == 1 and rows["floor-fp32"]["samples"] == 5  # one epoch; five samples
    stack = rows["engine-fp32-stack3"]
    assert stack["efficiency"] is None  # no floor of a stack's shape: no efficiency rather than one above 1
    for precision in ("fp32", "bf16"):  # timed before and after the training, the faster kept
        floor = rows[f"floor-{precision}"]
        assert len(floor["floor_s_before_after"]) == 2 and floor["epoch_s"] == min(floor["floor_s_before_after"])
    assert stack["test_mse"] == pytest.approx(rows["engine-fp32"]["test_mse"], rel=1e-4)  # its first run: seed 0
    # seed-ae takes the written-out MLP step; the autograd row is the same training, taped
    assert rows["engine-fp32-autograd"]["test_mse"] == pytest.approx(rows["engine-fp32"]["test_mse"], rel=1e-4)
    # 4 steps on 512 images take seed-ae from 0.170 (untrained) to 0.135-0.138 (seeds 0-2)
    assert 0 < rows["engine-fp32"]["test_mse"] < 0.15 and 0 < rows["seed-loop"]["test_mse"] < 0.15
    assert result["git_commit"] is None or len(result["git_commit"]) >= 7
    assert result["host"] and result["cpu_model"] and result["epochs"] == 1


# Rows with epoch times worked by hand: (mode, precision, stack, epoch_s, test_mse) and what `_ratios` must give.
RATIO_ROWS = [
    ("seed-loop", "fp32", 1, 4.0, 0.020),
    ("engine-fp32", "fp32", 1, 1.0, 0.021),
    ("engine-bf16", "bf16", 1, 0.5, 0.0189),
    ("engine-fp32-stack4", "fp32", 4, 2.0, 0.022),
    ("floor-fp32", "fp32", 1, 0.8, None),
    ("floor-bf16", "bf16", 1, 0.4, None),
]
# mode -> (speed-up over the seed loop per model-epoch, efficiency, MSE against its reference)
RATIOS = {
    "seed-loop": (1.0, None, 1.0),
    "engine-fp32": (4.0, 0.8, 1.05),  # 4.0 / 1.0; floor 0.8 / 1.0; 0.021 / 0.020 (the seed loop)
    "engine-bf16": (8.0, 0.8, 0.9),  # 4.0 / 0.5; floor 0.4 / 0.5; 0.0189 / 0.021 (engine-fp32)
    "engine-fp32-stack4": (8.0, None, 1.1),  # 4.0 / (2.0 / 4 models); no stacked floor; 0.022 / 0.020
    "floor-fp32": (5.0, None, None),  # 4.0 / 0.8
    "floor-bf16": (10.0, None, None),
}


def test_ratios_match_values_worked_by_hand() -> None:
    rows = [
        {"mode": mode, "precision": precision, "stack": stack, "epoch_s": epoch_s, "model_epoch_s": epoch_s / stack,
         "test_mse": mse}
        for mode, precision, stack, epoch_s, mse in RATIO_ROWS
    ]  # fmt: skip
    _ratios(rows)
    for r in rows:
        speedup, efficiency, mse_ratio = RATIOS[r["mode"]]
        assert r["speedup_vs_seed_loop"] == pytest.approx(speedup), r["mode"]
        assert r.get("efficiency") == (None if efficiency is None else pytest.approx(efficiency)), r["mode"]
        assert r.get("mse_vs_reference") == (None if mse_ratio is None else pytest.approx(mse_ratio)), r["mode"]


def test_bench_cli_saves_json_and_refuses_bad_models(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "--models", "seed-ae,nope", "--results", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "unknown arch 'nope'" in bad.stderr and not (tmp_path / "r").exists()
    args = ["--models", "seed-conv", "--epochs", "1", "--train-size", "256", "--device", "cpu", "--no-clock-check"]
    res = runner.invoke(app, ["bench", *args, "--results", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    saved = Path(json.loads(res.stdout)["saved"])
    assert saved.parent == tmp_path / "r" / "benchmarks"
    result = json.loads(saved.read_text())
    assert len(result["rows"]) == 5
    for r in result["rows"]:  # each row carries its own noise measure, in the saved JSON too
        _assert_range(r)
    console = Console(record=True, width=400)
    console.print(bench_table(result, EFFICIENCY_NOTE).table)
    text = console.export_text()
    cells = {line.split("│")[2].strip(): line.split("│") for line in text.splitlines() if line.startswith("│")}
    assert cells["seed-loop"][4].strip() == "-"  # one timed epoch: no range, not "0%"
    floor = next(r for r in result["rows"] if r["mode"] == "floor-fp32")
    assert cells["floor-fp32"][4].strip() == f"{floor['range']:.0%}"  # the table shows the rows' range
    assert "efficiency = floor / achieved" in text and "a measure of the noise" in text


def _assert_range(row: dict[str, object]) -> None:
    """A row's range: (max - min) / median of its timings, or None (shown `-`) from a single timing."""
    if row["samples"] == 1:  # type: ignore[operator]
        assert row["range"] is None
    else:
        spread = (row["epoch_s_max"] - row["epoch_s_min"]) / row["epoch_s"]  # type: ignore[operator]
        assert row["range"] == pytest.approx(spread)


BAD_SPECS = [
    ({"epochs": 0}, ["--epochs", "0"], "--epochs: 0 is not allowed; it must be >= 1"),
    ({"batch_size": 0}, ["--batch-size", "0"], "--batch-size: 0 is not allowed; it must be >= 1"),
    ({"stack": -1}, ["--stack", "-1"], "--stack: -1 is not allowed; it must be >= 0"),
    ({"train_size": 0}, ["--train-size", "0"], "--train-size: 0 is not allowed; it must be >= 1"),
    ({"dataset": "cifar10"}, ["--dataset", "cifar10"], "--dataset: unknown value 'cifar10'; choose from: mnist"),
]


@pytest.mark.parametrize(("given", "args", "message"), BAD_SPECS, ids=[" ".join(a) for _, a, _ in BAD_SPECS])
def test_bench_spec_checks_itself_and_the_cli_says_so_in_one_line(
    tmp_path: Path, given: dict[str, object], args: list[str], message: str
) -> None:
    with pytest.raises(BadInput) as caught:
        BenchSpec(**given)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    res = CliRunner().invoke(app, ["bench", *args, "--results", str(tmp_path / "r")])
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == [f"aebench: error: {caught.value}"]
    assert not (tmp_path / "r").exists()


def test_bench_reads_the_data_dir(tmp_path: Path, fashion_mnist: data.Dataset) -> None:
    def linked(name: str) -> Path:
        folder = tmp_path / name / "data" / name
        folder.mkdir(parents=True)
        for source in fashion_mnist.folder.glob("*-ubyte*"):
            (folder / source.name).symlink_to(source)
        return folder.parent

    common = ["--models", "seed-ae", "--epochs", "1", "--train-size", "256", "--device", "cpu", "--no-clock-check"]
    # Fashion-MNIST's files under MNIST's name, in --data-dir only: read from there, and refused for what they are
    wrong = CliRunner().invoke(app, ["bench", *common, "--dataset", "mnist", "--data-dir", str(linked("mnist")),
                                     "--results", str(tmp_path / "w")])  # fmt: skip
    assert wrong.exit_code == 2 and "holds Fashion-MNIST's files, not MNIST's" in wrong.stderr
    assert not (tmp_path / "w").exists()
    right = linked("fashion-mnist")
    res = CliRunner().invoke(app, ["bench", *common, "--dataset", "fashion-mnist", "--data-dir", str(right),
                                   "--results", str(tmp_path / "r"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dataset"] == "fashion-mnist" and {r["model"] for r in out["rows"]} == {"seed-ae"}
    missing = CliRunner().invoke(
        app, ["bench", *common, "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"),
              "--results", str(tmp_path / "q")]
    )  # fmt: skip
    assert missing.exit_code == 2 and "mnist" in missing.stderr and not (tmp_path / "q").exists()


def test_the_clock_check_fails_when_a_timer_misses_work(
    fashion_mnist: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The throughput's timers (perf_counter) see a tenth of the time; the outer wall clock (monotonic) does not."""
    real = time.perf_counter
    origin = real()
    monkeypatch.setattr(time, "perf_counter", lambda: origin + (real() - origin) / 10)
    spec = BenchSpec(models=("seed-ae",), train_size=1024, device="cpu")
    check = clock_check(spec, fashion_mnist, torch.device("cpu"), epochs=2)
    assert check["ratio"] > 3 and check["ok"] is False
    assert "DISAGREES" in clock_line(check)


def test_a_benched_model_is_named_with_its_options() -> None:
    spec = parse_model("conv:downsample=stride:latent_dim=16:batchnorm=true:dropout=0.1")
    assert (spec.arch, spec.downsample, spec.latent_dim, spec.batchnorm, spec.dropout) == ("conv", "stride", 16, True,
                                                                                            0.1)  # fmt: skip
    assert parse_model("fc:hidden=512-256").hidden == (512, 256)
    assert parse_model("seed-conv") == model_spec("seed-conv")
    for bad, says in [("conv:bogus=1", "has no option 'bogus'; it takes: activation"),
                      ("conv:downsample=strid", "choose from: pool, stride"), ("conv:latent_dim=x", "not a number"),
                      ("conv:downsample", "option=value"), ("seed-conv:latent_dim=4", "has no option"),
                      ("nope", "unknown arch")]:  # fmt: skip
        with pytest.raises(BadInput, match=says):
            parse_model(bad)


@pytest.mark.parametrize("arch", ["seed-conv", "seed-deepconv", "conv"])
def test_a_conv_floor_takes_each_layer_s_faster_products(arch: str) -> None:
    """Each convolution's direct kernels (the forward convolution and its backward, as the engine runs them)
    run on the layer's own shapes, and the floor counts how many beat their im2col GEMMs."""
    model = create_model(arch, (1, 28, 28))
    layers = step_layers(model, (1, 28, 28), 8)
    convs = [layer for layer in layers if isinstance(layer.module, nn.Conv2d | nn.ConvTranspose2d)]
    assert convs and [layer.input_grad for layer in layers][0] is False  # the data needs no gradient
    for layer in convs:
        _direct(layer, torch.device("cpu"), torch.float32)()  # runs on the shapes the hooks saw
    floor = time_floor(model, (1, 28, 28), 8, steps=4, repeats=1, sample_steps=2)
    assert 0 <= floor["floor_direct_convs"] <= len(convs)


def test_a_closed_form_model_has_nothing_to_bench(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "--models", "pca", "--results", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "closed form" in res.stderr
    assert not (tmp_path / "benchmarks").exists()
