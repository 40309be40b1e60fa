"""Whether a run had finished learning: how fast its validation loss was still falling when it stopped.

A ranking of runs that were all still improving fast may be an artifact of the budget, not a fact about
the architectures; these figures let a report say so. Declared once here and read by the engine (each run's
record) and the report (runs stored without a validation curve are judged on the curve they have).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WINDOW = 3  # epochs over which the recent rate of improvement is measured
CONVERGED_BELOW = 0.5  # % per epoch: a run improving more slowly than this at its end is called converged


def still_improving(losses: Sequence[float], window: int = WINDOW) -> float:
    """The loss's recent fall, in % per epoch: the geometric mean over the last `window` epochs (fewer when the
    run has fewer), positive while it falls; NaN with fewer than two finite epochs."""
    xs = [float(v) for v in losses if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if len(xs) < 2:
        return math.nan
    span = min(window, len(xs) - 1)
    ratio = xs[-1] / xs[-1 - span]
    return 100.0 * (1.0 - float(ratio ** (1.0 / span)))


def converged(rate: float) -> bool:
    """The report's rule: improving less than CONVERGED_BELOW % an epoch at the end (a NaN rate is not)."""
    return math.isfinite(rate) and rate < CONVERGED_BELOW


def best_epoch(losses: Sequence[float], min_delta: float = 0.0) -> int | None:
    """The 1-based epoch of the best loss, counting only improvements by a relative `min_delta` (the epoch
    early stopping keeps); None without a finite loss."""
    best, found = math.inf, None
    for epoch, value in enumerate(losses, 1):
        if value is not None and math.isfinite(value) and value < best * (1.0 - min_delta):
            best, found = value, epoch
    return found
