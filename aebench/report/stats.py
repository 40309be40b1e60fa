"""How sure an answer is: 95% confidence intervals over seeds, Welch's t-test between the best two configs,
and how many seeds would likely settle a question the runs leave open.

Kept apart from the tables so the statistics are one small, tested module: a table shows `mean ± ci95`,
an answer says whether the best config beats the runner-up beyond seed noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

ALPHA = 0.05  # two-sided: a difference is called settled at p < 0.05
POWER = 0.8  # for the seeds estimate: the chance a real difference of the observed size would show
MAX_SEEDS = 1000  # past this an estimate says only "many": the difference is within noise for practical purposes


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student's t); NaN with fewer than two values."""
    xs = _finite(values)
    if len(xs) < 2:
        return math.nan
    sd = statistics.stdev(xs)
    return float(scipy_stats.t.ppf(1 - ALPHA / 2, len(xs) - 1)) * sd / math.sqrt(len(xs))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) between two configs' seeds; NaN if either has
    fewer than two, and 0 or 1 where both have no spread (the means differ, or not)."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2:
        return math.nan
    if statistics.stdev(xs) == 0 and statistics.stdev(ys) == 0:
        return 1.0 if sum(xs) / len(xs) == sum(ys) / len(ys) else 0.0
    return float(scipy_stats.ttest_ind(xs, ys, equal_var=False).pvalue)


def seeds_to_settle(a: Sequence[float], b: Sequence[float]) -> int | None:
    """Seeds per config that would likely (80% power, two-sided 5%) tell these two apart, if the observed
    difference and spread are the truth: 2 (z_a + z_b)^2 s^2 / d^2, s^2 the mean of the two variances.
    None without two seeds on each side to estimate the spread from."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2:
        return None
    diff = abs(sum(xs) / len(xs) - sum(ys) / len(ys))
    var = (statistics.variance(xs) + statistics.variance(ys)) / 2
    if diff == 0:
        return MAX_SEEDS
    z = float(scipy_stats.norm.ppf(1 - ALPHA / 2) + scipy_stats.norm.ppf(POWER))
    return min(MAX_SEEDS, max(2, math.ceil(2 * z * z * var / (diff * diff))))


@dataclass(frozen=True)
class Answer:
    """The best config for one question, how sure that is, and what would settle it when it is not."""

    question: str
    metric: str
    best: str
    mean: float
    ci95: float
    runner_up: str | None
    runner_up_mean: float | None
    p_value: float | None
    settled: bool
    seeds_needed: int | None

    def sentence(self) -> str:
        """The answer as a reader wants it: the best, then whether the runs settle it."""
        if self.runner_up is None:
            return f"{self.best} (the only config)"
        if self.settled:
            return f"{self.best}, ahead of {self.runner_up} (Welch's t-test p = {self.p_value:.3g})"
        if self.runner_up_mean == self.mean:  # an exact metric (parameters, FLOPs) two configs share
            return f"tied: {self.best} and {self.runner_up} have the same value"
        why = "one seed per config" if self.p_value is None or math.isnan(self.p_value) else (
            f"p = {self.p_value:.2g} against {self.runner_up}"
        )
        more = f"; about {self.seeds_needed} seeds per config would likely settle it" if self.seeds_needed else (
            "; run --seeds 3 or more to tell"
        )
        if self.seeds_needed is not None and self.seeds_needed >= MAX_SEEDS:
            more = "; they are within seed noise of each other: more seeds would not tell them apart in practice"
        return f"not settled: {self.best} leads {self.runner_up} ({why}){more}"


def answer(question: str, metric: str, better: str, named: Sequence[tuple[str, Sequence[float]]]) -> Answer | None:
    """The best of `named` (label, seed values) on `metric` ("min" or "max" better), against the runner-up."""
    scored = [(label, _finite(values)) for label, values in named]
    scored = [(label, xs) for label, xs in scored if xs]
    if not scored:
        return None
    sign = 1.0 if better == "min" else -1.0
    scored.sort(key=lambda item: sign * sum(item[1]) / len(item[1]))
    (best, xs), rest = scored[0], scored[1:]
    mean = sum(xs) / len(xs)
    if not rest:
        return Answer(question, metric, best, mean, ci95(xs), None, None, None, False, None)
    second, ys = rest[0]
    p = welch_p(xs, ys)
    settled = not math.isnan(p) and p < ALPHA
    needed = None if settled else seeds_to_settle(xs, ys)
    return Answer(question, metric, best, mean, ci95(xs), second, sum(ys) / len(ys), None if math.isnan(p) else p,
                  settled, needed)  # fmt: skip
