"""Every column a run has, named once: its SQL type, its header with unit, its format, which way is better.

The store's schema, the report's tables, the terminal summaries and the MLflow export all read
this table, so a metric added here is stored, tabulated, printed and exported alike, and a
header or a unit cannot differ between two of them. Config axes are listed too (their values
read short in labels: `L16`, `drop=0.2`); `aebench.config` checks that its dataclasses and
this list name the same axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["config", "metric", "provenance", "record"]
Better = Literal["min", "max"] | None


@dataclass(frozen=True)
class Column:
    """One column of the `runs` table.

    Args:
        sql: its SQLite type.
        header: how tables head it, with its unit.
        fmt: how one value is written (after `scale`).
        better: which way is better, for marking the best row; None where neither is.
        short: the terminal's narrower header (defaults to `header`).
        scale: multiplier from the stored value to the shown one (FLOPs are shown in MFLOPs).
        label: how a config value reads in a label, `{}` standing for the value (config axes only).
        exact: the same for every seed of a config (sizes): shown without a spread.
    """

    name: str
    kind: Kind
    sql: str
    header: str = ""
    fmt: str = "{}"
    better: Better = None
    short: str = ""
    scale: float = 1.0
    label: str = "{}"
    exact: bool = False

    @property
    def terminal_header(self) -> str:
        return self.short or self.header or self.name

    def format(self, value: Any) -> str:
        """The value as a table shows it; `-` for a missing one (None, NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, int | float) and not isinstance(value, bool) and self.scale != 1.0:
            value = value * self.scale
        return self.fmt.format(value)


# One row a column, in table order; `-- kind` starts a section. Flags: `label=` how a config value reads in a
# label (`{}` is the value), `scale=` stored -> shown, `exact` the same for every seed of a config.
_TABLE = """
name                    | sql     | header             | format  | better | terminal | flags
-- config
arch                    | TEXT    | arch               |         |        |          |
depth                   | TEXT    | depth              |         |        |          |
hidden                  | TEXT    | hidden             |         |        |          | label=hidden={}
latent_dim              | INTEGER | latent dim         |         |        |          | label=L{}
downsample              | TEXT    | downsample         |         |        |          |
upsample                | TEXT    | upsample           |         |        |          |
activation              | TEXT    | activation         |         |        |          |
output                  | TEXT    | output             |         |        |          | label=out={}
batchnorm               | INTEGER | batchnorm          |         |        |          |
dropout                 | REAL    | dropout            |         |        |          | label=drop={}
pretrain                | TEXT    | pretrain           |         |        |          |
pretrain_epochs         | INTEGER | pretrain epochs    |         |        |          | label=pretrain×{}
options                 | TEXT    | options            |         |        |          |
source                  | TEXT    | model source MD5   |         |        |          | label=src={}
dataset                 | TEXT    | dataset            |         |        |          |
train_size              | INTEGER | train size         |         |        |          | label=n={}
loss                    | TEXT    | loss               |         |        |          | label={}-loss
lr                      | REAL    | lr                 |         |        |          | label=lr={}
batch_size              | INTEGER | batch size         |         |        |          | label=bs={}
epochs                  | INTEGER | epochs             |         |        |          | label={}ep
seed                    | INTEGER | seed               |         |        |          | label=seed{}
weight_decay            | REAL    | weight decay       |         |        |          | label=wd={}
grad_clip               | REAL    | grad clip          |         |        |          | label=clip={}
lr_schedule             | TEXT    | lr schedule        |         |        |          | label={}-lr
precision               | TEXT    | precision          |         |        |          |
step                    | TEXT    | step               |         |        |          | label={}-step
machine                 | TEXT    | machine            |         |        |          | label=@{}
val_fraction            | REAL    | val fraction       |         |        |          | label=val={}
patience                | INTEGER | patience           |         |        |          | label=patience={}
min_delta               | REAL    | min delta          |         |        |          | label=Δmin={}
equal_steps             | INTEGER | equal steps        |         |        |          | label=equal-steps
-- metric
test_mse                | REAL    | test MSE           | {:.5f}  | min    | MSE      |
test_sse                | REAL    | test SSE/img       | {:.3f}  | min    |          |
test_bce                | REAL    | test BCE           | {:.5f}  | min    |          |
test_l1                 | REAL    | test L1            | {:.5f}  | min    |          |
test_psnr               | REAL    | PSNR (dB)          | {:.2f}  | max    | PSNR dB  |
test_ssim               | REAL    | SSIM               | {:.3f}  | max    |          |
probe_acc               | REAL    | probe acc          | {:.3f}  | max    | probe    |
params                  | INTEGER | params             | {:,.0f} | min    |          | exact
encoder_params          | INTEGER | encoder params     | {:,.0f} |        |          | exact
decoder_params          | INTEGER | decoder params     | {:,.0f} |        |          | exact
latent_size             | INTEGER | latent             | {:,.0f} |        |          | exact
compression_ratio       | REAL    | compression (×)    | {:.1f}  |        |          | exact
flops_per_sample        | INTEGER | MFLOPs/img         | {:.2f}  | min    |          | scale=1e-6 exact
train_samples_per_s     | REAL    | train img/s        | {:,.0f} | max    |          |
train_samples_per_s_min | REAL    | train img/s min    | {:,.0f} |        |          |
train_samples_per_s_max | REAL    | train img/s max    | {:,.0f} |        |          |
epoch_seconds           | REAL    | epoch (s)          | {:.2f}  | min    |          |
timed_epochs            | INTEGER | timed epochs       | {:.0f}  |        |          |
timed_steps             | INTEGER | timed steps        | {:.0f}  |        |          |
engine_step             | TEXT    | engine step        |         |        |          |
onednn                  | INTEGER | oneDNN             | {:.0f}  |        |          |
flush_denormal          | INTEGER | denormals flushed  | {:.0f}  |        |          |
infer_samples_per_s     | REAL    | infer img/s        | {:,.0f} | max    |          |
infer_samples_per_s_min | REAL    | infer img/s min    | {:,.0f} |        |          |
infer_samples_per_s_max | REAL    | infer img/s max    | {:,.0f} |        |          |
peak_mem_mb             | REAL    | peak mem (MB)      | {:,.0f} | min    |          |
stack_size              | INTEGER | stack size         | {:.0f}  |        |          |
stack_samples_per_s     | REAL    | stack img/s        | {:,.0f} |        |          |
stack_epoch_seconds     | REAL    | stack epoch (s)    | {:.2f}  |        |          |
bf16_as_fp32            | INTEGER | bf16 as fp32       | {:.0f}  |        |          |
cuda_graph              | INTEGER | CUDA graph         | {:.0f}  |        |          |
epochs_run              | INTEGER | epochs run         | {:.0f}  |        |          |
best_epoch              | INTEGER | best epoch         | {:.0f}  |        |          |
still_improving         | REAL    | improving %/ep     | {:.2f}  |        |          |
train_steps             | INTEGER | steps              | {:,.0f} |        |          |
train_flops             | REAL    | train GFLOPs       | {:,.0f} |        |          | scale=1e-9
-- provenance
device                  | TEXT    | device             |         |        |          |
device_name             | TEXT    | device name        |         |        |          |
torch_version           | TEXT    | torch              |         |        |          |
git_commit              | TEXT    | commit             |         |        |          |
host                    | TEXT    | host               |         |        |          |
pid                     | INTEGER | pid                |         |        |          |
workers                 | INTEGER | workers            | {:.0f}  |        |          |
started_at              | TEXT    | started at         |         |        |          |
wall_seconds            | REAL    | wall time (s)      | {:.2f}  |        |          |
data_dir                | TEXT    | data folder        |         |        |          |
data_digest             | TEXT    | data MD5s          |         |        |          |
-- record
error                   | TEXT    | error              |         |        |          |
diverged_epoch          | INTEGER | diverged at epoch  |         |        |          |
checkpoint              | TEXT    | checkpoint         |         |        |          |
claimed_at              | TEXT    | claimed at         |         |        |          |
heartbeat_at            | TEXT    | heartbeat at       |         |        |          |
finished_at             | TEXT    | finished at        |         |        |          |
"""


def _parse(table: str) -> tuple[Column, ...]:
    """The rows of `_TABLE` as Columns (a table reads better than sixty constructor calls)."""
    kind = ""
    columns = []
    for line in table.strip().splitlines()[1:]:
        if line.startswith("--"):
            kind = line[2:].strip()
            continue
        name, sql, header, fmt, better, terminal, flags = (cell.strip() for cell in line.split("|"))
        options: dict[str, Any] = {}
        for flag in flags.split():
            key, _, value = flag.partition("=")
            options[key] = float(value) if key == "scale" else value or True
        columns.append(
            Column(name, kind, sql, header, fmt or "{}", better or None, terminal, **options)  # type: ignore[arg-type]
        )
    return tuple(columns)


_COLUMNS = _parse(_TABLE)
COLUMNS: dict[str, Column] = {c.name: c for c in _COLUMNS}


def of_kind(*kinds: Kind) -> dict[str, Column]:
    """The columns of these kinds, in table order."""
    return {c.name: c for c in _COLUMNS if c.kind in kinds}


CONFIG = tuple(of_kind("config"))
# The per-epoch curve's columns (the `epochs` table), after run_id and epoch: every curve a run records.
EPOCH_COLUMNS: dict[str, str] = {"train_loss": "REAL", "val_loss": "REAL", "test_loss": "REAL", "seconds": "REAL",
                                 "lr": "REAL"}  # fmt: skip
METRICS = tuple(of_kind("metric"))
# Columns a run writes when it finishes (metrics and provenance): what `Store.finish` takes from a run's record.
MEASURED = tuple(of_kind("metric", "provenance"))


# ---- config labels: how a config reads in a table row, a legend or a progress line ----


def missing(value: Any) -> bool:
    """None or NaN: what SQLite's NULL comes back as."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain(value: Any) -> str:
    """16.0 -> '16' (SQLite NULLs turn integer columns into floats), 0.001 -> '0.001'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def axis_label(axis: str, value: Any) -> str | None:
    """A config value as it reads in a label ('L16', 'drop=0.2'); None where it says nothing (a NULL)."""
    if missing(value):
        return None
    text = plain(value)
    if axis == "batchnorm":
        return "bn" if text in ("1", "True") else "no-bn"
    if axis == "pretrain":
        return "greedy" if text == "greedy" else "no-pretrain"
    if axis == "equal_steps":
        return "equal-steps" if text in ("1", "True") else None
    return COLUMNS[axis].label.format(text) if axis in COLUMNS else text


def config_label(values: Any, axes: Any, drop: Any = ()) -> str:
    """'conv shallow L16' from a config's values (a mapping or a row) on `axes`, less those in `drop`."""
    skip = set(drop)
    parts = [axis_label(a, values[a]) for a in axes if a not in skip]
    return " ".join(p for p in parts if p) or "all runs"
