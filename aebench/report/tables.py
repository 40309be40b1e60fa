"""How configs are named and tabulated: short labels, the per-config summary, best per question, findings.

Shared by the charts, the pages and the terminal, so a config reads the same everywhere.
Everything here returns plain strings and DataFrames; escaping them is the pages' job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from aebench.columns import COLUMNS, CONFIG, axis_label, config_label, missing, plain
from aebench.config import DEPTHS
from aebench.report.contents import Finding
from aebench.report.stats import Answer, answer, holm_answers

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


# How a model was trained rather than what it is: configs are ranked only against others that share these (a run
# on 2,000 images or for fewer epochs is not "worse" than a full one, just trained less).
SETTINGS = ("dataset", "train_size", "epochs", "precision", "step")
SPEED = {"train_samples_per_s", "infer_samples_per_s", "epoch_seconds", "peak_mem_mb"}  # also per device


def _key(configs: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    present = [c for c in columns if c in configs.columns]
    return pd.Series([tuple(plain(v) if not missing(v) else "" for v in row) for row in configs[present].itertuples(
        index=False)], index=configs.index, dtype=object)  # fmt: skip


def comparable(configs: pd.DataFrame) -> tuple[set[int], str | None]:
    """The configs that are ranked against each other (those sharing the most common training settings; ties
    go to the full training set, then the longest training) and, when others exist, a sentence saying why
    they are left out of the ranking."""
    keys = _key(configs, SETTINGS)
    if keys.nunique() <= 1:
        return set(configs.index), None

    def preference(key: tuple[str, ...]) -> tuple[int, int, float]:
        rows = configs[keys == key].iloc[0]
        full = int(missing(rows.get("train_size")))
        return (int((keys == key).sum()), full, float(rows.get("epochs") or 0))

    chosen = max(keys.unique(), key=preference)
    ranked = set(configs.index[keys == chosen])
    first = configs.loc[min(ranked)]
    shared = ", ".join(f"{s.replace('_', ' ')} {plain(first[s]) if not missing(first[s]) else 'all'}"
                       for s in SETTINGS if s in configs.columns)  # fmt: skip
    others = ", ".join(str(configs.loc[i, "label"]) for i in configs.index if i not in ranked)
    return ranked, f"best is marked among the {len(ranked)} configs trained with {shared}; not ranked: {others}"


def _ranked(configs: pd.DataFrame, metric: str, pool: set[int]) -> pd.DataFrame:
    """The configs of `pool` that compete on `metric`: for a speed, only those measured on the pool's most common
    device (two machines' samples/s are not one race)."""
    part = configs.loc[sorted(pool)]
    if metric in SPEED and "device_name" in part.columns and part["device_name"].nunique() > 1:
        part = part[part["device_name"] == part["device_name"].mode().iloc[0]]
    return part


def _best_rows(configs: pd.DataFrame, metric: str, pool: set[int]) -> set[int]:
    better = COLUMNS[metric].better
    part = _ranked(configs, metric, pool)
    values = pd.to_numeric(part[metric], errors="coerce")
    if better is None or values.isna().all() or values.nunique() < 2:
        return set()
    target = values.min() if better == "min" else values.max()
    return set(part.index[values == target])


def summary_tables(configs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[Answer], str | None]:
    """The per-config table as display strings (mean ± 95% CI over seeds), a same-shaped mask of the best cells,
    the best config per question with how sure it is (each judged alone: `adjusted` judges them with the
    findings), and why some configs are not ranked (None when all are)."""
    axes = configs.attrs.get("axes") or varying_axes(configs)
    shown = {a: a.replace("_", " ") for a in axes}
    table = pd.DataFrame({h: [axis_label(a, v) or "-" for v in configs[a]] for a, h in shown.items()})
    table["seeds"] = configs["seeds"].astype(str)
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    metrics = [m for m in TABLE_METRICS if m in configs.columns and configs[m].notna().any()]
    pool, note = comparable(configs)
    # Off CUDA, peak memory is the process's peak RSS, which only grows over a grid run in one
    # process: shown for what it is, but no config "wins" it.
    gpu_memory = "device" in configs.columns and set(configs["device"]) == {"cuda"}
    for metric in metrics:
        header = COLUMNS[metric].header
        if metric == "peak_mem_mb" and not gpu_memory:
            header = "peak RSS (MB)"
        spread = configs.get(f"{metric}_ci95", pd.Series(math.nan, index=configs.index))
        table[header] = [_cell(metric, m, s) for m, s in zip(configs[metric], spread, strict=True)]
        marked = metric != "peak_mem_mb" or gpu_memory
        best[header] = table.index.isin(_best_rows(configs, metric, pool)) if marked else False
        if metric == "test_mse":
            ratio = configs["test_mse"] / configs.loc[sorted(pool), "test_mse"].min()
            table["MSE ×best"] = [f"{r:.2f}" if not missing(r) else "-" for r in ratio]
            best["MSE ×best"] = best[header]
    found: list[Answer] = []
    for question, metric in QUESTIONS:
        better = COLUMNS[metric].better
        if metric not in metrics or better is None:
            continue
        part = _ranked(configs, metric, pool)
        values = part.get(f"{metric}_values", pd.Series([[v] for v in part[metric]], index=part.index))
        got = answer(question, metric, better, [(str(part.loc[i, "label"]), values[i]) for i in part.index])
        if got is not None:
            found.append(got)
    return table, best, found, note


def _compare(part: pd.DataFrame, key: str, fmt: str = "{}") -> Answer | None:
    """The best of `part` on test MSE, named by `key` ('L32', 'medium'), against the runner-up."""
    named = [(fmt.format(plain(r[key])), r.get("test_mse_values") or [r["test_mse"]]) for _, r in part.iterrows()]
    return answer("", "test_mse", "min", named)


def findings(configs: pd.DataFrame) -> list[Finding]:
    """One finding per seed question the selected runs can answer (Exercises 1, 4, 5; the Pareto front), each
    with the comparison it ends on, judged alone: `adjusted` judges them with the report's answers."""
    axes = configs.attrs.get("axes") or varying_axes(configs)
    out: list[Finding] = []
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
            out.append(Finding(f"Latent dim (Ex. 1), {name}: test MSE {steps}", _compare(part, "latent_dim", "L{}")))
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
            out.append(Finding(f"Depth (Ex. 5), {name}: test MSE {steps}", _compare(part, "depth")))
    with_ds = df.dropna(subset=["downsample"])
    if set(with_ds["downsample"]) >= {"pool", "stride"}:
        for name, part in with_ds.groupby(
            [config_label(r, axes, drop=("downsample",)) for _, r in with_ds.iterrows()], sort=False
        ):
            if part["downsample"].nunique() < 2:
                continue
            p, s = (part[part["downsample"] == k].iloc[0] for k in ("pool", "stride"))
            text = (f"Stride vs pool (Ex. 4), {name}: test MSE pool {mse(p['test_mse'])} ({p['params']:,.0f} params), "
                    f"stride {mse(s['test_mse'])} ({s['params']:,.0f} params)")  # fmt: skip
            out.append(Finding(text, _compare(part, "downsample")))
    if df["params"].nunique() > 1:
        front = pareto_front(df, "params")
        points = [f"{r['label']} ({si(r['params'])} params, MSE {mse(r['test_mse'])})" for _, r in front.iterrows()]
        out.append(Finding("Pareto front (test MSE against parameters): " + "; ".join(points), None))
    return out


def adjusted(answers: list[Answer], found: list[Finding]) -> tuple[list[Answer], list[Finding]]:
    """The report's answers and findings judged together (`holm_answers`): every comparison it states is one
    family, so that twenty-odd tests at 5% do not settle one by chance."""
    compared = [i for i, f in enumerate(found) if f.answer is not None]
    judged = holm_answers([*answers, *(a for f in found if (a := f.answer) is not None)])
    out = list(found)
    for i, a in zip(compared, judged[len(answers) :], strict=True):
        out[i] = replace(found[i], answer=a)
    return judged[: len(answers)], out


def answers_table(found: list[Answer]) -> pd.DataFrame:
    """The best config per question, for the pages: raw and Holm-adjusted p beside each other."""
    return pd.DataFrame(
        [{"question": a.question, "best config": a.best,
          "mean ± 95% CI": f"{_cell(a.metric, a.mean, a.ci95)} {COLUMNS[a.metric].header}",
          "runner-up": a.runner_up or "-",
          "p (Welch)": "-" if a.p_value is None or a.exact else f"{a.p_value:.3g}",
          "p (Holm)": "-" if a.p_adjusted is None or a.exact else f"{a.p_adjusted:.3g}",
          "settled": a.verdict()}
         for a in found],
        columns=["question", "best config", "mean ± 95% CI", "runner-up", "p (Welch)", "p (Holm)", "settled"],
    )  # fmt: skip
