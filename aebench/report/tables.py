"""How configs are named and tabulated: short labels, the per-config summary, best per question, findings.

Shared by the charts, the pages and the terminal, so a config reads the same everywhere.
Everything here returns plain strings and DataFrames; escaping them is the pages' job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from aebench.columns import COLUMNS, CONFIG, axis_label, config_label, missing, plain
from aebench.config import DEPTHS

# Axes a config is labelled by, each value rendered short; `seed` is what a config averages over.
AXES = tuple(c for c in CONFIG if c != "seed")
# The metrics a config table shows, in order; header, format, direction and exactness come from `aebench.columns`.
TABLE_METRICS: tuple[str, ...] = (
    "test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "latent_size", "compression_ratio",
    "flops_per_sample", "train_samples_per_s", "infer_samples_per_s", "epoch_seconds", "peak_mem_mb",
)  # fmt: skip
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Which config reconstructs best (lowest test MSE)?", "test_mse"),
    ("Which looks most like the originals (highest SSIM)?", "test_ssim"),
    ("Whose codes keep the most class information (linear probe)?", "probe_acc"),
    ("Which model is smallest (parameters)?", "params"),
    ("Which forward pass is cheapest (FLOPs per image)?", "flops_per_sample"),
    ("Which trains fastest (samples/s)?", "train_samples_per_s"),
    ("Which infers fastest (samples/s)?", "infer_samples_per_s"),
)


# ---- labels ----


def varying_axes(df: pd.DataFrame, axes: Iterable[str] = AXES) -> list[str]:
    """The axes that tell the rows apart, `arch` always: those with two or more values, and those that
    are set for some runs of an arch and not for others (grad_clip 1.0 beside none). An axis that is
    NULL only where it does not apply (downsample for fc) is not one: every label would repeat it."""
    found = []
    archs = df["arch"] if "arch" in df.columns else pd.Series("", index=df.index)
    for axis in axes:
        if axis not in df.columns:
            continue
        values = {plain(v) for v in df[axis] if not missing(v)}
        within = df.groupby(archs)[axis].agg(lambda s: len({None if missing(v) else plain(v) for v in s}))
        if axis == "arch" or len(values) > 1 or (within > 1).any():
            found.append(axis)
    return found


def si(value: float) -> str:
    """1_083_696 -> '1.08M': short enough to print on a bar."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def pareto_front(df: pd.DataFrame, x: str, y: str = "test_mse") -> pd.DataFrame:
    """Rows no other row beats on both x and y (smaller is better on each), by increasing x."""
    rows = df.dropna(subset=[x, y]).sort_values([x, y])
    best = math.inf
    keep = []
    for idx, value in rows[y].items():
        if value < best:
            keep.append(idx)
            best = value
    return rows.loc[keep]


# ---- tables ----


def _cell(metric: str, mean: Any, std: Any) -> str:
    column = COLUMNS[metric]
    text = column.format(mean)
    if text != "-" and not column.exact and not missing(std):
        text += " ± " + column.format(std)
    return text


def _best_rows(configs: pd.DataFrame, metric: str) -> set[int]:
    better = COLUMNS[metric].better
    values = pd.to_numeric(configs[metric], errors="coerce")
    if better is None or values.isna().all() or values.nunique() < 2:
        return set()
    target = values.min() if better == "min" else values.max()
    return set(configs.index[values == target])


def summary_tables(configs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The per-config table as display strings, a same-shaped mask of the best cells, and best per question."""
    axes = configs.attrs.get("axes") or varying_axes(configs)
    shown = {a: a.replace("_", " ") for a in axes}
    table = pd.DataFrame({h: [axis_label(a, v) or "-" for v in configs[a]] for a, h in shown.items()})
    table["seeds"] = configs["seeds"].astype(str)
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    metrics = [m for m in TABLE_METRICS if m in configs.columns and configs[m].notna().any()]
    # Off CUDA, peak memory is the process's peak RSS, which only grows over a grid run in one
    # process: shown for what it is, but no config "wins" it.
    gpu_memory = "device" in configs.columns and set(configs["device"]) == {"cuda"}
    for metric in metrics:
        header = COLUMNS[metric].header
        if metric == "peak_mem_mb" and not gpu_memory:
            header = "peak RSS (MB)"
        table[header] = [_cell(metric, m, s) for m, s in zip(configs[metric], configs[f"{metric}_std"], strict=True)]
        marked = metric != "peak_mem_mb" or gpu_memory
        best[header] = table.index.isin(_best_rows(configs, metric)) if marked else False
        if metric == "test_mse":
            ratio = configs["test_mse"] / configs["test_mse"].min()
            table["MSE ×best"] = [f"{r:.2f}" if not missing(r) else "-" for r in ratio]
            best["MSE ×best"] = best[header]
    rows = []
    for question, metric in QUESTIONS:
        winners = sorted(_best_rows(configs, metric))
        if metric in metrics and winners:
            header = COLUMNS[metric].header
            names = ", ".join(str(configs.loc[i, "label"]) for i in winners)
            value = f"{table.loc[winners[0], header]} {header}"
            rows.append({"question": question, "best config": names, "value": value})
    answers = pd.DataFrame(rows, columns=["question", "best config", "value"])
    return table, best, answers


def _best(part: pd.DataFrame, key: str, fmt: str = "{}") -> str:
    """'best: medium', or '..., within seed noise of deep' where the runner-up is less than one std behind."""
    ranked = part.sort_values("test_mse", kind="stable")
    top = ranked.iloc[0]
    text = f"best: {fmt.format(plain(top[key]))}"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        stds = [v for v in (top.get("test_mse_std"), second.get("test_mse_std")) if not missing(v)]
        if stds and second["test_mse"] - top["test_mse"] < max(stds):
            text += f", within seed noise of {fmt.format(plain(second[key]))}"
    return text


def findings(configs: pd.DataFrame) -> list[str]:
    """One sentence per seed question the selected runs can answer (Exercises 1, 4, 5; the Pareto front)."""
    axes = configs.attrs.get("axes") or varying_axes(configs)
    out: list[str] = []
    df = configs.dropna(subset=["test_mse"])

    def mse(v: float) -> str:
        return f"{v:.4f}"

    with_latent = df.dropna(subset=["latent_dim"])
    if with_latent["latent_dim"].nunique() > 1:
        for name, part in with_latent.groupby(
            [config_label(r, axes, drop=("latent_dim",)) for _, r in with_latent.iterrows()], sort=False
        ):
            if part["latent_dim"].nunique() < 2:
                continue
            part = part.sort_values("latent_dim")
            steps = ", ".join(f"L{int(d)} {mse(m)}" for d, m in zip(part["latent_dim"], part["test_mse"], strict=True))
            out.append(f"Latent dim (Ex. 1), {name}: test MSE {steps}; {_best(part, 'latent_dim', 'L{}')}.")
    with_depth = df.dropna(subset=["depth", "latent_dim"])
    if with_depth["depth"].nunique() > 1:
        groups = [
            f"{config_label(r, axes, drop=('depth', 'latent_dim'))} at L{int(r['latent_dim'])}"
            for _, r in with_depth.iterrows()
        ]
        for name, part in with_depth.groupby(groups, sort=False):
            if part["depth"].nunique() < 2:
                continue
            part = part.sort_values("depth", key=lambda s: s.map(DEPTHS.index))
            steps = ", ".join(f"{d} {mse(m)}" for d, m in zip(part["depth"], part["test_mse"], strict=True))
            out.append(f"Depth (Ex. 5), {name}: test MSE {steps}; {_best(part, 'depth')}.")
    with_ds = df.dropna(subset=["downsample"])
    if set(with_ds["downsample"]) >= {"pool", "stride"}:
        for name, part in with_ds.groupby(
            [config_label(r, axes, drop=("downsample",)) for _, r in with_ds.iterrows()], sort=False
        ):
            if part["downsample"].nunique() < 2:
                continue
            p, s = (part[part["downsample"] == k].iloc[0] for k in ("pool", "stride"))
            out.append(
                f"Stride vs pool (Ex. 4), {name}: test MSE pool {mse(p['test_mse'])} ({p['params']:,.0f} params), "
                f"stride {mse(s['test_mse'])} ({s['params']:,.0f} params); {_best(part, 'downsample')}."
            )
    if df["params"].nunique() > 1:
        front = pareto_front(df, "params")
        out.append(
            "Pareto front (test MSE against parameters): "
            + "; ".join(
                f"{r['label']} ({si(r['params'])} params, MSE {mse(r['test_mse'])})" for _, r in front.iterrows()
            )
            + "."
        )
    return out
