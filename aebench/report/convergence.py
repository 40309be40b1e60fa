"""Whether a report's answers are about the architectures or about the budget they were trained for.

Each run's recent rate of improvement (`aebench.train.convergence`), filled in from its stored curve where
the run did not record one; each config's mean curve over seeds; and, for an answer between two configs, a
note saying whether they had converged and whether the winner changed over the epochs. Runs with a validation
holdout are judged on it; runs stored without one on their test curve, which is read here, never chosen on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from aebench.columns import missing
from aebench.models.registry import create_model
from aebench.train.convergence import CONVERGED_BELOW, WINDOW, best_epoch, converged, still_improving
from aebench.train.pretrain import pretrain_steps

RULE = (f"converged: validation loss falling less than {CONVERGED_BELOW}% an epoch over its last {WINDOW} epochs "
        "(the test curve for runs stored without a validation holdout)")  # fmt: skip
QUALITY = ("test_mse", "test_ssim", "probe_acc", "test_psnr")  # the answers training longer could change


def with_curves(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with each run's loss curve (`curve`: validation where it has one, else test), which one it is
    (`curve_kind`), and `still_improving`, `epochs_run` and `best_epoch` filled in from it where not recorded."""
    runs = runs.copy()
    by_run = {rid: part.sort_values("epoch") for rid, part in epochs.groupby("run_id")} if len(epochs) else {}
    curves, kinds = [], []
    for _, row in runs.iterrows():
        part = by_run.get(row["run_id"])
        curve, kind = [], ""
        if part is not None:
            for name, label in (("val_loss", "validation"), ("test_loss", "test")):
                if name in part.columns and part[name].notna().any():
                    curve, kind = [float(v) for v in part[name]], label
                    break
        curves.append(curve)
        kinds.append(kind)
    runs["curve"], runs["curve_kind"] = curves, kinds
    for name, fill in (("still_improving", still_improving), ("epochs_run", len), ("best_epoch", best_epoch)):
        if name not in runs.columns:
            runs[name] = math.nan
        recorded = runs[name].astype(object)
        runs[name] = [fill(c) if missing(v) and c else v for v, c in zip(recorded, curves, strict=True)]
    runs["budget_epochs"] = [budget_epochs(r) for _, r in runs.iterrows()]
    return runs


def budget_epochs(row: Mapping[str, Any]) -> float:
    """A run's optimizer steps in epochs' worth: the end-to-end epochs it ran plus greedy pretraining's (each
    pretraining epoch of a layer takes an epoch's steps). Readable from any run, including those stored before
    steps were recorded, and alike within a report, whose ranked runs share their training images and batch."""
    ran = row.get("epochs_run")
    epochs = float(ran) if ran is not None and not missing(ran) else float(row.get("epochs") or 0)
    if row.get("pretrain") != "greedy":
        return epochs
    layers = pretrain_steps(create_model(str(row["arch"]), (1, 1, 1), **_fc_shape(row)), 1, 1, 1)
    return epochs + layers * float(row.get("pretrain_epochs") or 1)


def _fc_shape(row: Mapping[str, Any]) -> dict[str, Any]:
    """The options that decide an fc model's layer count (its pretraining pairs), from a stored row."""
    hidden = row.get("hidden")
    if hidden is not None and not missing(hidden):
        return {"hidden": tuple(int(h) for h in str(hidden).split(",")), "depth": None}
    return {"depth": row.get("depth") or "medium"}


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """The epoch-wise mean over seeds, as long as the shortest curve (early stopping ends seeds apart)."""
    kept = [list(c) for c in curves if len(c)]
    if not kept:
        return []
    n = min(len(c) for c in kept)
    return [sum(c[i] for c in kept) / len(kept) for i in range(n)]


def converged_count(configs: pd.DataFrame) -> tuple[int, int]:
    """(converged, judged): the trained configs whose mean rate says converged, among those with a curve."""
    rates = [float(r) for r in configs.get("still_improving", pd.Series(dtype=float)) if not missing(r)]
    return sum(converged(r) for r in rates), len(rates)


def _rate(row: Mapping[str, Any]) -> float:
    value = row.get("still_improving")
    return math.nan if value is None or missing(value) else float(value)


def history(named: Sequence[tuple[str, Sequence[float]]]) -> str | None:
    """Whether the leader changed over the epochs, from mean curves (lower is better): 'medium best since
    epoch 3' or 'deep overtook medium at epoch 40'; None with fewer than two curves of two epochs."""
    named = [(label, list(c)) for label, c in named if len(c) >= 2]
    if len(named) < 2:
        return None
    n = min(len(c) for _, c in named)
    leaders = [min(named, key=lambda item: item[1][e])[0] for e in range(n)]
    final = leaders[-1]
    since = n
    while since > 1 and leaders[since - 2] == final:
        since -= 1
    if since == 1:
        return f"{final} best at every epoch"
    return f"{final} overtook {leaders[since - 2]} at epoch {since}"


def note(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """How far to trust a comparison of `rows` (named `names`) beyond its budget: their convergence, in one
    clause, and who led over the epochs."""
    rates = [_rate(r) for r in rows]
    if all(math.isnan(r) for r in rates):
        return ""
    falling = [(n, r) for n, r in zip(names, rates, strict=True) if not converged(r)]
    if not falling:
        words = "both" if len(rows) == 2 else "all"
        text = f"{words} converged (under {CONVERGED_BELOW}% an epoch at the end)"
    else:
        each = ", ".join(f"{n} {r:.1f}%" if math.isfinite(r) else f"{n} (no curve)" for n, r in falling)
        text = f"still falling ({each} an epoch): this may change with longer training"
    curves = [(n, r.get("curve") or []) for n, r in zip(names, rows, strict=True)]
    led = history([(n, c) for n, c in curves if isinstance(c, list)])
    return f"{text}; {led}" if led else text
