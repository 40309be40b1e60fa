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
from aebench.grid.baselines import BASELINE, WORSE, ratio_to_pca
from aebench.report import convergence
from aebench.report.contents import Finding
from aebench.report.stats import Answer, answer, holm_answers

# Axes a config is labelled by, each value rendered short; `seed` is what a config averages over.
AXES = tuple(c for c in CONFIG if c != "seed")
# The metrics a config table shows, in order; header, format, direction and exactness come from `aebench.columns`.
TABLE_METRICS: tuple[str, ...] = (
    "test_mse", "test_psnr", "test_ssim", "probe_acc", "params", "latent_size", "compression_ratio",
    "flops_per_sample", "train_samples_per_s", "infer_samples_per_s", "epoch_seconds", "peak_mem_mb",
    "still_improving",
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
SETTINGS = ("dataset", "train_size", "epochs", "precision", "step", "val_fraction", "patience")
BUDGET_TOLERANCE = 0.05  # step budgets further apart than this are not "trained alike"
SPEED = {"train_samples_per_s", "infer_samples_per_s", "epoch_seconds", "peak_mem_mb"}  # also per device


def _key(configs: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    present = [c for c in columns if c in configs.columns]
    return pd.Series([tuple(plain(v) if not missing(v) else "" for v in row) for row in configs[present].itertuples(
        index=False)], index=configs.index, dtype=object)  # fmt: skip


def no_bottleneck(configs: pd.DataFrame) -> set[int]:
    """Configs whose code is at least as large as the image (compression ≤ 1×): they can copy their input, so
    they are marked and never ranked for reconstruction or put on a Pareto front."""
    ratio = pd.to_numeric(configs.get("compression_ratio", pd.Series(math.nan, index=configs.index)), errors="coerce")
    return set(configs.index[ratio <= 1.0])


def _unequal_budgets(configs: pd.DataFrame, pool: set[int]) -> set[int]:
    """The configs of `pool` whose optimizer steps differ by more than BUDGET_TOLERANCE from the pool's most
    common budget (greedy pretraining on top of the epochs, say). Runs that stop on a validation plateau
    (--patience) are trained to convergence, not for a budget: their steps differ by design."""
    if "budget_epochs" not in configs.columns:
        return set()
    steps = pd.to_numeric(configs.loc[sorted(pool), "budget_epochs"], errors="coerce")
    stops = configs.loc[sorted(pool)].get("patience", pd.Series(math.nan, index=steps.index))
    fixed = steps[steps.notna() & stops.isna()]
    if fixed.nunique() < 2:
        return set()
    common = fixed.mode().iloc[0]
    return set(fixed.index[(fixed - common).abs() > BUDGET_TOLERANCE * common])


def comparable(configs: pd.DataFrame) -> tuple[set[int], str | None]:
    """The configs that are ranked against each other (those sharing the most common training settings; ties
    go to the full training set, then the longest training; among them, the most common step budget) and, when
    others exist, a sentence saying why they are left out of the ranking. Baselines (PCA) and configs without a
    bottleneck are never ranked: the first is the bar every config is held to, the second copies its input."""
    apart = set(configs.index[configs["arch"] == BASELINE]) | no_bottleneck(configs)
    ranked, note = _by_settings(configs.drop(index=sorted(apart)))
    unequal = _unequal_budgets(configs, ranked)
    notes = [note] if note else []
    if unequal:
        ranked -= unequal
        common = pd.to_numeric(configs.loc[sorted(ranked), "budget_epochs"], errors="coerce").mode().iloc[0]
        names = ", ".join(f"{configs.loc[i, 'label']} ({configs.loc[i, 'budget_epochs']:g})" for i in sorted(unequal))
        notes.append(f"not ranked with them, trained for more than {BUDGET_TOLERANCE:.0%} more or fewer optimizer "
                     f"steps than their {common:g} epochs' worth (pretraining counted): {names}")  # fmt: skip
    if apart:
        notes.append("not ranked: " + ", ".join(
            f"{configs.loc[i, 'label']} ({'baseline' if configs.loc[i, 'arch'] == BASELINE else 'no bottleneck'})"
            for i in sorted(apart)))  # fmt: skip
    return ranked, "; ".join(notes) or None


def _by_settings(configs: pd.DataFrame) -> tuple[set[int], str | None]:
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
            table["MSE ×best"] = [f"{r:.2f}" if not missing(r) and i in pool else "-" for i, r in ratio.items()]
            best["MSE ×best"] = best[header]
            pca, copies = ratio_to_pca(configs.to_dict("records")), no_bottleneck(configs)
            if copies or any(q is not None for q in pca):
                table["MSE ×PCA"] = [
                    "no bottleneck" if i in copies else "-" if q is None else f"{q:.2f}" + (" (worse)" if q > 1 else "")
                    for i, q in zip(configs.index, pca, strict=True)
                ]
                best["MSE ×PCA"] = False
    found: list[Answer] = []
    for question, metric in QUESTIONS:
        better = COLUMNS[metric].better
        if metric not in metrics or better is None:
            continue
        part = _ranked(configs, metric, pool)
        values = part.get(f"{metric}_values", pd.Series([[v] for v in part[metric]], index=part.index))
        got = answer(question, metric, better, [(str(part.loc[i, "label"]), values[i]) for i in part.index])
        if got is not None:
            found.append(_noted(got, {str(part.loc[i, "label"]): part.loc[i] for i in part.index}))
    return table, best, found, note


def _noted(got: Answer, rows: Any) -> Answer:
    """`got` with its convergence note: whether its two configs (`rows`: name -> row) were still improving, and
    who led over the epochs. Only for quality: training longer does not change a parameter count."""
    if got.metric not in convergence.QUALITY or got.runner_up is None:
        return got
    pair = [rows[got.best], rows[got.runner_up]]
    alike = all(plain(pair[0].get(k) or "sigmoid") == plain(pair[1].get(k) or "sigmoid")
                for k in ("loss", "output"))  # curves on one scale: a seed model's output is its sigmoid  # fmt: skip
    curves = [] if alike else ["curve"]
    note = convergence.note([{k: v for k, v in r.items() if k not in curves} for r in pair], [got.best, got.runner_up])
    return replace(got, note=note)


def _compare(part: pd.DataFrame, key: str, fmt: str = "{}", names: Sequence[str] | None = None) -> Answer | None:
    """The best of `part` on test MSE, named by `key` ('L32', 'medium') or by `names`, against the runner-up."""
    names = list(names) if names is not None else [fmt.format(plain(r[key])) for _, r in part.iterrows()]
    rows = dict(zip(names, (r for _, r in part.iterrows()), strict=True))
    named = [(n, r.get("test_mse_values") or [r["test_mse"]]) for n, r in rows.items()]
    got = answer("", "test_mse", "min", named)
    return None if got is None else _noted(got, rows)


def findings(configs: pd.DataFrame) -> list[Finding]:
    """One finding per seed question the selected runs can answer (Exercises 1, 4, 5; the Pareto front), each
    with the comparison it ends on, judged alone: `adjusted` judges them with the report's answers."""
    axes = configs.attrs.get("axes") or varying_axes(configs)
    out: list[Finding] = []
    everything = configs.dropna(subset=["test_mse"])
    # PCA is the bar, not a contender; a code as large as the image is no bottleneck: neither is compared
    df = everything.drop(index=sorted(no_bottleneck(everything))).query(f"arch != '{BASELINE}'")

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
    for axis, what in (("activation", "Activation (Ex. 1c)"), ("pretrain", "Pretraining (Part 3)")):
        out += _axis_findings(df, axes, axis, what)
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
    pca = ratio_to_pca(everything.to_dict("records"))
    judged = [(str(r["label"]), q) for (_, r), q in zip(everything.iterrows(), pca, strict=True) if q is not None]
    if judged:
        worse = [f"{label} ({q:.2f}×)" for label, q in judged if q > 1]
        text = (f"Against PCA at the same code size: {len(worse)} of {len(judged)} configs worse"
                + (f" ({WORSE}): " + ", ".join(worse) if worse else ""))  # fmt: skip
        out.append(Finding(text, None))
    ranked = df.drop(index=[i for i in df.index if i in no_bottleneck(df)])
    if ranked["params"].nunique() > 1:
        front = pareto_front(pd.concat([ranked, everything[everything["arch"] == BASELINE]]), "params")
        points = [f"{r['label']} ({si(r['params'])} params, MSE {mse(r['test_mse'])})" for _, r in front.iterrows()]
        out.append(Finding("Pareto front (test MSE against parameters): " + "; ".join(points), None))
    return out


def _axis_findings(df: pd.DataFrame, axes: list[str], axis: str, what: str) -> list[Finding]:
    """One finding per group of configs that differ only in `axis`; configs whose step budgets differ (greedy
    pretraining on top of the epochs) are stated, not compared: the difference would be the budget's too."""
    out: list[Finding] = []
    part_of = df.dropna(subset=[axis])
    if part_of[axis].nunique() < 2:
        return out
    drop = (axis, "pretrain_epochs", "equal_steps") if axis == "pretrain" else (axis,)
    for name, part in part_of.groupby([config_label(r, axes, drop=drop) for _, r in part_of.iterrows()], sort=False):
        if len(part) < 2:
            continue
        budgets = part.get("budget_epochs", pd.Series(math.nan, index=part.index))
        extra = ("pretrain_epochs", "equal_steps") if axis == "pretrain" else ()  # greedy ×1, ×2, at equal steps
        labels = [config_label(r, (axis, *extra)) for _, r in part.iterrows()]
        steps = ", ".join(f"{lab} {m:.4f}" + (f" ({b:g} epochs' steps)" if budgets.nunique() > 1 else "")
                          for lab, m, b in zip(labels, part["test_mse"], budgets, strict=True))  # fmt: skip
        named = dict(zip(part.index, labels, strict=True))  # greedy at equal steps is not plain greedy
        if budgets.nunique() > 1 and (budgets.max() - budgets.min()) > BUDGET_TOLERANCE * budgets.min():
            same = part[budgets == budgets.min()]
            text = f"{what}, {name}: test MSE {steps}; unequal step budgets are not compared"
            alike = _compare(same, axis, names=[named[i] for i in same.index]) if len(same) > 1 else None
            out.append(Finding(text, alike))
        else:
            out.append(Finding(f"{what}, {name}: test MSE {steps}", _compare(part, axis, names=list(labels))))
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
          "settled": a.verdict(), "convergence": a.note or "-"}
         for a in found],
        columns=["question", "best config", "mean ± 95% CI", "runner-up", "p (Welch)", "p (Holm)", "settled",
                 "convergence"],
    )  # fmt: skip
