"""Quality regression checks: each config of a store against the same config in a published study.

A config is matched on every axis but the seed (and `machine`: the same experiment anywhere), and
judged on test MSE. A rerun is not the baseline's mean: its seeds differ, and CPU and GPU shuffles
differ, so a faithful rerun scatters as the baseline's seeds do. The allowance is therefore a
prediction interval for the mean of the rerun's m seeds, from the baseline's n seeds:
mean ± t(0.975, n - 1) * s * sqrt(1/m + 1/n). One rerun is judged against the spread of the
baseline's seeds, not against the narrower confidence interval of their mean.

Three seeds can agree by chance to a fraction of a percent, which would fail a rerun on noise no
one could act on, so the margin is never narrower than FLOOR of the baseline's mean. A rerun below
the band is "improved": shown, never failed. A rerun on a seed the baseline holds repeats one of its
samples and tells nothing; `shared_seeds` counts them, and CI reruns on seeds past the study's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

from aebench.columns import axis_label, missing
from aebench.config import earlier_values
from aebench.errors import BadInput
from aebench.report.stats import ci95
from aebench.report.tables import AXES

METRIC = "test_mse"
IGNORED = {"machine"}  # where a run was measured is not part of its experiment
# The narrowest margin, either way, as a fraction of the baseline's mean: the reference study's 3-seed prediction
# intervals run from +0.4% to +43% of the mean; 5% is a change worth a look, and above its seed-to-seed scatter.
FLOOR = 0.05


def _keys(runs: pd.DataFrame, axes: list[str]) -> pd.Series:
    return pd.Series(
        ["|".join(axis_label(a, row[a]) or "-" for a in axes) for _, row in runs.iterrows()], index=runs.index
    )


def read_baseline(folder: Path) -> pd.DataFrame:
    """The baseline's finished runs, from the `runs.csv` its report wrote."""
    path = folder / "runs.csv"
    if not path.is_file():
        raise BadInput(f"--baseline {folder}: no runs.csv there; give the folder `aebench report --out` wrote")
    runs = pd.read_csv(path)
    if METRIC not in runs.columns or "status" not in runs.columns:
        raise BadInput(f"--baseline {folder}: {path} is not an aebench runs.csv (no {METRIC} or status column)")
    for name, value in earlier_values().items():  # a study written before a setting existed ran at its old value
        if name not in runs.columns:
            runs[name] = value
    return runs[runs["status"] == "done"].reset_index(drop=True)


def _seeds(runs: pd.DataFrame) -> set[int]:
    return {int(s) for s in runs["seed"] if not missing(s)} if "seed" in runs.columns else set()


def against_baseline(runs: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """One row per config of `runs`: its mean test MSE over its seeds, the baseline's mean ± 95% CI, the band it
    may fall in (the prediction interval, widened to ± FLOOR of the mean where narrower: `limit` above, `improved
    below` below) and a verdict: ok, regressed, improved, or why it was not judged."""
    axes = [a for a in AXES if a not in IGNORED and a in runs.columns and a in baseline.columns]
    mine, theirs = runs.assign(_key=_keys(runs, axes)), baseline.assign(_key=_keys(baseline, axes))
    rows: list[dict[str, Any]] = []
    for key, group in mine.groupby("_key", sort=False):
        matched = theirs[theirs["_key"] == key]
        now = [float(v) for v in group[METRIC] if not missing(v)]
        then = [float(v) for v in matched[METRIC] if not missing(v)]
        row: dict[str, Any] = {
            "config": str(key).replace("|-", "").replace("|", " "), "seeds": len(now),
            "shared_seeds": len(_seeds(group) & _seeds(matched)),
            "test_mse": sum(now) / len(now) if now else math.nan, "baseline_seeds": len(then),
        }  # fmt: skip
        if len(then) < 2 or not now:
            verdict = "no baseline" if not then else "baseline has one seed: not judged"
            row.update(baseline_mean=sum(then) / len(then) if then else math.nan, baseline_ci95=math.nan,
                       limit=math.nan, improved_below=math.nan, verdict=verdict)  # fmt: skip
        else:
            n, m = len(then), len(now)
            mean = sum(then) / n
            sd = float(pd.Series(then).std())
            spread = float(scipy_stats.t.ppf(0.975, n - 1)) * sd * math.sqrt(1 / m + 1 / n)
            margin = max(spread, FLOOR * abs(mean))
            low, high = mean - margin, mean + margin
            verdict = "regressed" if row["test_mse"] > high else "improved" if row["test_mse"] < low else "ok"
            row.update(baseline_mean=mean, baseline_ci95=ci95(then), limit=high, improved_below=low, verdict=verdict)
        rows.append(row)
    columns = ["config", "seeds", "shared_seeds", "test_mse", "baseline_seeds", "baseline_mean", "baseline_ci95",
               "limit", "improved_below", "verdict"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def regressions(table: pd.DataFrame) -> list[str]:
    """The configs worse than the baseline allows ("improved" ones are shown, not failed)."""
    return [str(c) for c in table.loc[table["verdict"] == "regressed", "config"]]
