"""`aebench bench`: in one process, the seed's training loop, aebench's engine and the floor, per model.

Every figure is measured in the same run on the same machine, so the ratios (speed-up
over the seed loop, efficiency = floor / achieved) mean something even where the
absolute seconds do not travel.
"""

from __future__ import annotations

import gzip
import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aebench import data as datamod
from aebench.bench.floor import time_floor
from aebench.bench.named import parse_model
from aebench.config import RunConfig, check_choice, check_number, model_spec
from aebench.errors import BadInput, Diverged
from aebench.models.base import Autoencoder
from aebench.models.registry import create_model
from aebench.models.zoo import SEED_MODELS
from aebench.train.accel import mlp_step
from aebench.train.accel.device_tuning import fp32_instead
from aebench.train.checkpoint import atomic_write, check_writable
from aebench.train.device import cpu_model, device_name, git_commit, resolve_device, synchronize
from aebench.train.loop import train_epochs
from aebench.train.metrics import pixel_mse
from aebench.train.speed import solo_speed
from aebench.train.stacked import stackable, train_stacked

Report = Callable[[str], None]
# What the bench table's derived columns mean; a front end shows it beside the rows.
EFFICIENCY_NOTE = (
    "efficiency = floor / achieved, floor = the step's GEMMs (im2col GEMMs for convolutions, which a direct "
    "convolution can beat), each (on a CPU) through the faster of torch and oneDNN, + one Adam update through "
    "the engine's own fused call, timed before and after the model's training and the faster kept; "
    "a stack's s/epoch and img/s are the whole stack's, its speed-up per model-epoch, no efficiency (no floor of "
    "a stack's shape); "
    "MSE vs ref: fp32 modes against the seed loop, bf16 modes against engine-fp32; "
    "(as fp32): bf16 asked, the engine trained this model in fp32, its rule for convolutions on a CPU without AMX; "
    "range = (max - min) / median of the timed epochs (of a floor: of its samples), a measure of the noise; "
    "- where one epoch was timed (the first is warm-up: --epochs 3 or more times two)"
)


@dataclass(frozen=True)
class BenchSpec:
    """What to bench; checked when made, like `RunConfig`, so bad input fails before anything is timed."""

    models: tuple[str, ...] = SEED_MODELS
    dataset: str = "fashion-mnist"
    epochs: int = 3  # the first warms up: the median and range come from two timed epochs
    batch_size: int = 128
    train_size: int | None = None
    device: str = "auto"
    seed: int = 0
    stack: int = 0  # also train this many seeds of each stackable model as one stack (0: no)
    data_dir: str | None = None  # searched first for the dataset, as in `train` and `compare`

    def __post_init__(self) -> None:
        check_number("--epochs", self.epochs, low=1)
        check_number("--batch-size", self.batch_size, low=1)
        check_number("--stack", self.stack, low=0)
        if self.train_size is not None:
            check_number("--train-size", self.train_size, low=1)
        check_choice("--dataset", self.dataset, datamod.DATASETS)


@dataclass(frozen=True)
class Mode:
    """One way of training a model in the bench."""

    name: str
    precision: str = "fp32"
    cuda_graph: bool = True
    stack: int = 1
    written_step: bool = True


def modes(spec: BenchSpec, device: torch.device, can_stack: bool, written: bool = False) -> list[Mode]:
    """The seed loop and the engine in fp32 and bf16; on CUDA also the engine without its graph
    (what the graph buys); where the model takes the written-out MLP step (`written`), also
    the engine with autograd's step in both precisions (what that buys); with --stack, a stack
    of that many seeds in fp32."""
    out = [Mode("seed-loop"), Mode("engine-fp32"), Mode("engine-bf16", "bf16")]
    if device.type == "cuda":
        out.insert(2, Mode("engine-fp32-eager", cuda_graph=False))
    if written:
        out.insert(2, Mode("engine-fp32-autograd", written_step=False))
        out.append(Mode("engine-bf16-autograd", "bf16", written_step=False))
    if spec.stack > 1 and can_stack:
        out.append(Mode(f"engine-fp32-stack{spec.stack}", stack=spec.stack))
    return out


def _torchvision_dataset(folder: Path, name: str, root: Path) -> Any:
    """The split as the seed loads it: a torchvision dataset with ToTensor, read per item."""
    from torchvision import datasets, transforms

    cls = datamod.DATASETS[name]
    raw = root / cls / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split in datamod.SPLIT_FILES.values():
        for stem in split:
            path = folder / f"{stem}.gz"
            # torchvision looks for the uncompressed IDX files in <root>/<Class>/raw
            (raw / stem).write_bytes(
                gzip.decompress(path.read_bytes()) if path.exists() else (folder / stem).read_bytes()
            )
    return getattr(datasets, cls)(str(root), train=True, download=False, transform=transforms.ToTensor())


def seed_loop(
    model: nn.Module, dataset: Any, device: torch.device, epochs: int, batch_size: int, limit: int | None
) -> list[float]:
    """The tutorial's loop: DataLoader(shuffle=True), Adam, MSELoss, `loss.item()` every batch."""
    from torch.utils.data import DataLoader, Subset

    if limit is not None:
        dataset = Subset(dataset, range(limit))
    kwargs: dict[str, Any] = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, **kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.MSELoss()
    seconds = []
    for _ in range(epochs):
        model.train()
        synchronize(device)
        start = time.perf_counter()
        total_loss = 0.0
        for images, _labels in loader:
            images = images.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), images)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


PRECISIONS = (("fp32", torch.float32), ("bf16", torch.bfloat16))


def _floor(model: nn.Module, ds: datamod.Dataset, spec: BenchSpec, steps: int, dtype: torch.dtype) -> dict[str, float]:
    return time_floor(model, ds.input_shape, spec.batch_size, steps, dtype=dtype)


def _timed(seconds: Sequence[float]) -> list[float]:
    return list(seconds[1:] or seconds)  # the first epoch warms up


def bench_model(
    name: str, spec: BenchSpec, ds: datamod.Dataset, tv_dataset: Any, device: torch.device, report: Report
) -> list[dict[str, Any]]:
    """Rows for one model: one per mode plus its fp32 and bf16 floors."""
    n = spec.train_size or len(ds.train.images)
    steps = math.ceil(n / spec.batch_size)
    x_train = datamod.to_device(ds.train.images[:n], device, "sigmoid")
    x_test = datamod.to_device(ds.test.images, device, "sigmoid")

    model_of = parse_model(name)

    def fresh(seed: int = spec.seed) -> Autoencoder:
        torch.manual_seed(seed)
        model = create_model(model_of.arch, ds.input_shape, **model_of.builder_options()).to(device)
        assert isinstance(model, Autoencoder)
        return model

    # The floors are timed before and after the training modes and the faster counts: on a
    # machine whose speed drifts (a shared VM's does, for seconds at a time) that keeps a slow
    # moment from flattering the efficiency.
    report(f"{name}: floors")
    floors = {precision: [_floor(fresh(), ds, spec, steps, dtype)] for precision, dtype in PRECISIONS}
    rows: list[dict[str, Any]] = []
    probe = fresh()
    written = mlp_step.applies(probe, x_train, "mse")
    for mode in modes(spec, device, stackable(RunConfig(model=model_of), probe), written):
        report(f"{name}: {mode.name}")
        model = fresh()
        if mode.name == "seed-loop":
            seconds = seed_loop(model, tv_dataset, device, spec.epochs, spec.batch_size, spec.train_size)
        elif mode.stack > 1:
            models = [model, *(fresh(spec.seed + i) for i in range(1, mode.stack))]
            records = train_stacked(
                models, x_train, None, losses=["mse"] * mode.stack, lrs=[1e-3] * mode.stack,
                batch_size=spec.batch_size, epochs=spec.epochs,
                generators=[torch.Generator(device=device).manual_seed(spec.seed + i) for i in range(mode.stack)],
            )  # fmt: skip
            first = records[0]
            assert not isinstance(first, Diverged), f"{name} diverged in the stack: {first}"
            seconds = [r.seconds for r in first]
        else:
            gen = torch.Generator(device=device).manual_seed(spec.seed)
            alone = train_epochs(
                model, x_train, None, loss="mse", lr=1e-3, batch_size=spec.batch_size, epochs=spec.epochs,
                generator=gen, precision=mode.precision, cuda_graph=mode.cuda_graph, written_step=mode.written_step,
            )  # fmt: skip
            seconds = [r.seconds for r in alone]
        timed = _timed(seconds)
        epoch_s = statistics.median(timed)
        as_fp32 = mode.name != "seed-loop" and fp32_instead(model, device, mode.precision)
        rows.append({
            "model": name, "mode": mode.name, "precision": mode.precision, "stack": mode.stack,
            "bf16_as_fp32": as_fp32,
            "epoch_s": epoch_s, "epoch_s_min": min(timed), "epoch_s_max": max(timed), "samples": len(timed),
            "model_epoch_s": epoch_s / mode.stack, "samples_per_s": n * mode.stack / epoch_s,
            "test_mse": pixel_mse(model, x_test),  # for a stack: its first run, the same seed as the other rows
        })  # fmt: skip
    for precision, dtype in PRECISIONS:
        report(f"{name}: floor {precision}")
        floors[precision].append(_floor(fresh(), ds, spec, steps, dtype))
        floor = min(floors[precision], key=lambda f: f["floor_s"])
        rows.append({"model": name, "mode": f"floor-{precision}", "precision": precision, "stack": 1,
                     "epoch_s": floor["floor_s"], "epoch_s_min": floor["floor_s_min"],
                     "epoch_s_max": floor["floor_s_max"], "model_epoch_s": floor["floor_s"],
                     "samples_per_s": n / floor["floor_s"], **floor,
                     "floor_s_before_after": [f["floor_s"] for f in floors[precision]]})  # fmt: skip
    _ratios(rows)
    for r in rows:
        r["range"] = _spread(r)
    return rows


def _spread(row: dict[str, Any]) -> float | None:
    """(max - min) / median of a row's timed epochs (a floor's: of its samples); None where it has no min and
    max, or fewer than two timings (one timing has no spread: 0 would claim a noiseless machine)."""
    if row.get("epoch_s_min") is None or row.get("epoch_s_max") is None or row.get("samples", 2) < 2:
        return None
    return float((row["epoch_s_max"] - row["epoch_s_min"]) / row["epoch_s"])


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Speed-up over the seed loop per model-epoch; efficiency against the floor of the same
    precision (per model-epoch, so a stack can beat 1); MSE against the seed loop (fp32 modes)
    or engine-fp32 (bf16)."""
    by_mode = {r["mode"]: r for r in rows}
    seed = by_mode["seed-loop"]
    for r in rows:
        r["speedup_vs_seed_loop"] = seed["epoch_s"] / r["model_epoch_s"]
        if r["mode"].startswith("engine-"):
            # a stack has no floor of its own here (one model's floor would let it read above 1): no efficiency
            floor = by_mode[f"floor-{r['precision']}"]["epoch_s"]
            r["efficiency"] = floor / r["model_epoch_s"] if r["stack"] == 1 else None
            reference = by_mode["engine-fp32"] if r["precision"] == "bf16" else seed
            r["mse_vs_reference"] = r["test_mse"] / reference["test_mse"]
        if r["mode"] == "seed-loop":
            r["mse_vs_reference"] = 1.0


def drifted_floors(rows: list[dict[str, Any]], tolerance: float = 0.15) -> list[str]:
    """One line for each floor whose before and after timings differ by more than `tolerance`:
    the machine's speed changed while that model was benched, so its efficiencies are suspect."""
    lines = []
    for r in rows:
        timings = r.get("floor_s_before_after")
        if timings and max(timings) > (1 + tolerance) * min(timings):
            lines.append(
                f"{r['model']} {r['mode']}: {min(timings):.3f} s and {max(timings):.3f} s before and after its "
                f"training: the machine's speed changed during it, so rerun before trusting its efficiencies"
            )
    return lines


CLOCK_TOLERANCE = 0.3  # a reported throughput whose prediction misses the wall clock by more is suspect


def clock_check(
    spec: BenchSpec, ds: datamod.Dataset, device: torch.device, model: str = "seed-ae", epochs: int = 3
) -> dict[str, Any]:
    """Does the throughput a run reports match a clock that shares nothing with it?

    `model` trains `epochs` epochs under an outer wall clock (`time.monotonic`, around the whole
    training, not the per-epoch or per-window timers), then its reported throughput is measured as
    every run's is (`solo_speed`); `epochs * n / throughput` should come close to that wall time. A
    timer that missed work (an unsynchronised device, a step left out) reports a throughput that
    predicts too little time, and the ratio shows it.
    """
    cfg = RunConfig(model=model_spec(model), epochs=epochs, train_size=spec.train_size, seed=spec.seed)
    n = spec.train_size or len(ds.train.images)
    x_train = datamod.to_device(ds.train.images[:n], device, "sigmoid")
    torch.manual_seed(spec.seed)
    trained = create_model(model, ds.input_shape).to(device)
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    synchronize(device)
    start = time.monotonic()
    train_epochs(trained, x_train, None, loss="mse", lr=cfg.lr, batch_size=spec.batch_size, epochs=epochs,
                 generator=gen)  # fmt: skip
    synchronize(device)
    measured = time.monotonic() - start
    rate = solo_speed(trained, replace(cfg, batch_size=spec.batch_size), x_train)["train_samples_per_s"]
    predicted = epochs * n / rate
    ratio = measured / predicted
    ok = 1 / (1 + CLOCK_TOLERANCE) <= ratio <= 1 + CLOCK_TOLERANCE
    return {"model": model, "epochs": epochs, "predicted_s": predicted, "measured_s": measured, "ratio": ratio,
            "ok": ok}  # fmt: skip


def run_bench(spec: BenchSpec, report: Report | None = None, check_clock: bool = True) -> dict[str, Any]:
    """Bench every model in `spec`; returns rows plus the machine it ran on."""
    report = report or (lambda _msg: None)
    device = resolve_device(spec.device)
    for name in spec.models:  # bad names and options fail first
        named = parse_model(name)
        if create_model(named.arch, datamod.image_shape(spec.dataset), **named.builder_options()).closed_form:
            raise BadInput(f"--models: {name} is fitted in closed form, not trained: it has no training step to bench")
    ds = datamod.load(spec.dataset, spec.data_dir, allow_download=False)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aebench-seedloop-") as tmp:
        tv_dataset = _torchvision_dataset(ds.folder, spec.dataset, Path(tmp))
        for name in spec.models:
            rows += bench_model(name, spec, ds, tv_dataset, device, report)
    result: dict[str, Any] = {
        "device": device.type,
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "host": platform.node(),
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "dataset": spec.dataset,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "train_size": spec.train_size or len(ds.train.images),
        "stack": spec.stack,
        "rows": rows,
    }
    if check_clock:
        report("clock check: seed-ae, 3 epochs under an outer wall clock")
        result["clock_check"] = clock_check(spec, ds, device)
    return result


def save_bench(result: dict[str, Any], results: str | Path) -> Path:
    """Write the result as JSON under <results>/benchmarks/, named by time (atomic)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = Path(results) / "benchmarks" / f"aebench-bench-{stamp}.json"
    text = json.dumps(result, indent=2) + "\n"

    def write(fh: Any) -> None:
        fh.write(text.encode())

    atomic_write(path, write)
    return path


@dataclass(frozen=True)
class BenchRun:
    """A finished bench: the result as saved, where it was saved, and a warning line per drifted floor."""

    result: dict[str, Any]
    saved: Path
    drifted: list[str]


def bench_and_save(
    spec: BenchSpec, results: str | Path, report: Report | None = None, check_clock: bool = True
) -> BenchRun:
    """`aebench bench`: run the bench, save it under <results>/benchmarks/, and say which floors drifted.

    A `<results>/benchmarks/` that cannot be written is refused before anything is timed."""
    check_writable(Path(results) / "benchmarks", "--results", results)
    result = run_bench(spec, report=report, check_clock=check_clock)
    path = save_bench(result, results)
    return BenchRun(result, path, drifted_floors(result["rows"]))
