"""Tables and records for the terminal and `--json`: what a run or a grid came to."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from aebench.config import CONFIG_COLUMNS, RunConfig
from aebench.grid.cells import Outcome

# metric column -> (header with unit, format)
SHOWN_METRICS: dict[str, tuple[str, str]] = {
    "test_mse": ("MSE", "{:.5f}"),
    "test_psnr": ("PSNR dB", "{:.2f}"),
    "test_ssim": ("SSIM", "{:.3f}"),
    "probe_acc": ("probe", "{:.3f}"),
    "params": ("params", "{:,.0f}"),
    "latent_size": ("latent", "{:.0f}"),
    "flops_per_sample": ("MFLOPs/img", "{:.2f}"),
    "train_samples_per_s": ("train img/s", "{:,.0f}"),
    "infer_samples_per_s": ("infer img/s", "{:,.0f}"),
    "epoch_seconds": ("epoch (s)", "{:.2f}"),
}
# the grid table keeps to what fits a terminal; --json and the report have every column
GRID_METRICS = ("test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "train_samples_per_s")
_HIDDEN_CONFIG = {"pretrain_epochs"}


def describe(config: RunConfig) -> str:
    """A short label naming what sets this run apart from the defaults."""
    m = config.model
    parts = [m.arch]
    if m.hidden is not None:
        parts.append("hidden=" + ",".join(map(str, m.hidden)))
    elif m.depth is not None:
        parts.append(m.depth)
    if m.latent_dim is not None:
        parts.append(f"L{m.latent_dim}")
    parts += [v for v in (m.downsample, m.upsample) if v is not None]
    if m.activation not in (None, "relu"):
        parts.append(m.activation)
    if m.output not in (None, "sigmoid"):
        parts.append(f"out={m.output}")
    if m.batchnorm:
        parts.append("bn")
    if m.dropout:
        parts.append(f"drop={m.dropout:g}")
    if m.pretrain == "greedy":
        parts.append(f"greedy×{m.pretrain_epochs}")
    if config.dataset != "fashion-mnist":
        parts.append(config.dataset)
    if config.loss != "mse":
        parts.append(config.loss)
    if config.lr != 1e-3:
        parts.append(f"lr={config.lr:g}")
    if config.batch_size != 128:
        parts.append(f"bs={config.batch_size}")
    parts.append(f"seed{config.seed}")
    return " ".join(parts)


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """A run as one flat JSON-ready dict: config columns, metrics, status; NaN as null."""
    record = {k: v for k, v in outcome.row.items() if k != "config_json"}
    record.update(
        run_id=outcome.run_id,
        status=outcome.status,
        skipped=outcome.skipped,
        error=outcome.error or record.get("error"),
    )
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _varying(configs: Sequence[RunConfig]) -> list[str]:
    """Config columns whose value differs across the grid (always the arch)."""
    cols = [c.columns() for c in configs]
    return [
        name for name in CONFIG_COLUMNS
        if name == "arch" or (name not in _HIDDEN_CONFIG and len({str(c[name]) for c in cols}) > 1)
    ]  # fmt: skip


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def run_table(outcomes: Sequence[Outcome], single: bool = False) -> Table:
    if single:
        [o] = outcomes
        table = Table(
            title=f"run {o.run_id} ({describe(o.config)}): {o.status}"
            + (" (already in the store)" if o.skipped else "")
        )
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key, (header, fmt) in SHOWN_METRICS.items():
            table.add_row(header, _fmt(_scaled(key, o.row.get(key)), fmt))
        for key in ("compression_ratio", "peak_mem_mb", "device_name", "wall_seconds", "checkpoint", "error"):
            if o.row.get(key) is not None:
                value = o.row[key]
                table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
        return table
    axes = _varying([o.config for o in outcomes])
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    table = Table(title=f"grid: {len(outcomes)} runs, {done} done ({skipped} from earlier), "
                        f"{len(outcomes) - done} not done")  # fmt: skip
    table.add_column("run", no_wrap=True)
    for axis in axes:
        table.add_column(axis.replace("_", " "), no_wrap=True)
    table.add_column("status", no_wrap=True)
    for key in GRID_METRICS:
        table.add_column(SHOWN_METRICS[key][0], justify="right", no_wrap=True)
    for o in outcomes:
        cols = o.config.columns()
        status = o.status + ("*" if o.skipped else "")
        metrics = [_fmt(_scaled(k, o.row.get(k)), SHOWN_METRICS[k][1]) for k in GRID_METRICS]
        table.add_row(o.run_id[:8], *[_fmt(cols[a], "{}") for a in axes], status, *metrics)
    if skipped:
        table.caption = "* done by an earlier call, read from the store"
    return table


def _scaled(key: str, value: Any) -> Any:
    return value / 1e6 if key == "flops_per_sample" and value is not None else value


def plan_table(configs: Sequence[RunConfig], results: str | Path) -> pd.DataFrame:
    """What a grid would do, read from the store without writing to it."""
    from aebench.grid.store import DB_NAME, open_store

    statuses: dict[str, str] = {}
    if (Path(results) / DB_NAME).exists():
        with open_store(results, create=False) as store:
            statuses = {c.run_id: store.status(c.run_id) or "to train" for c in configs}
    axes = _varying(configs)
    rows = []
    for c in configs:
        cols = c.columns()
        rows.append({"run_id": c.run_id, **{a: cols[a] for a in axes}, "status": statuses.get(c.run_id, "to train")})
    return pd.DataFrame(rows)


def model_rows(pattern: str, dataset: str) -> list[dict[str, Any]]:
    from aebench.data import PUBLISHED_SHAPES, check_name
    from aebench.models.base import Autoencoder, count_params
    from aebench.models.registry import create_model, get_entry, list_models

    shape = PUBLISHED_SHAPES[check_name(dataset)]
    rows = []
    for name in list_models(pattern):
        entry = get_entry(name)
        model = create_model(name, shape)
        assert isinstance(model, Autoencoder)
        rows.append({
            "name": name,
            "params": count_params(model),
            "encoder_params": count_params(model.encoder),
            "decoder_params": count_params(model.decoder),
            "latent_size": model.latent_size,
            "options": sorted(entry.options),
            "defaults": {**entry.defaults, **entry.train_defaults},
            "description": entry.description,
        })  # fmt: skip
    return rows
