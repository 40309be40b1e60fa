"""How sure an answer is: 95% confidence intervals over seeds, Welch's t-test between the best two configs,
Holm's correction across every comparison a report makes, an equivalence test before two configs are called
equal, and how many seeds would likely settle a question the runs leave open.

Kept apart from the tables so the statistics are one small, tested module: a table shows `mean ± ci95`,
an answer says whether the best config beats the runner-up beyond seed noise. A report states twenty-odd
comparisons at once; tested one by one at 5%, about one in twenty would come out "settled" by chance, so
`holm` judges them together. "Not told apart" needs evidence of equality (TOST), not merely a large p.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scipy import stats as scipy_stats

from aebench.columns import COLUMNS

ALPHA = 0.05  # two-sided: a difference is called settled at a Holm-adjusted p < 0.05
POWER = 0.8  # for the seeds estimate: the chance a real difference of the observed size would show
MAX_SEEDS = 1000  # the seeds estimate stops here: "1000 or more seeds per config"
# Two configs are "not told apart" only when two one-sided Welch tests (TOST) show their means closer than this
# fraction of their mean: 2% of a test MSE of 0.0100 is 0.0002, about the 95% CI of a 3-seed mean in the reference
# study, so a tighter margin could never be shown with the seeds a study runs, and a looser one would call real
# steps of the latent-size curves (1-3%) equal.
EQUIVALENCE_MARGIN = 0.02


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


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
        return 1.0 if _mean(xs) == _mean(ys) else 0.0
    return float(scipy_stats.ttest_ind(xs, ys, equal_var=False).pvalue)


def tost_p(a: Sequence[float], b: Sequence[float], margin: float = EQUIVALENCE_MARGIN) -> float:
    """p-value of equivalence (two one-sided Welch tests) that the means differ by less than `margin` times their
    mean: the larger of the two one-sided p's, so small means equal within the margin. NaN with fewer than two
    seeds a side; 0 or 1 where neither side has spread (the difference is inside the margin, or not)."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2:
        return math.nan
    delta = margin * abs(_mean(xs) + _mean(ys)) / 2
    if statistics.stdev(xs) == 0 and statistics.stdev(ys) == 0:
        return 0.0 if abs(_mean(xs) - _mean(ys)) < delta else 1.0
    # shifting one sample by the margin turns each bound into an ordinary one-sided Welch test
    above = scipy_stats.ttest_ind([x + delta for x in xs], ys, equal_var=False, alternative="greater").pvalue
    below = scipy_stats.ttest_ind([x - delta for x in xs], ys, equal_var=False, alternative="less").pvalue
    return float(max(above, below))


def welch_power(diff: float, var_a: float, var_b: float, n: int, alpha: float = ALPHA) -> float:
    """The chance that Welch's two-sided test at `alpha` finds a true difference `diff` with `n` seeds per config,
    the true variances `var_a`, `var_b`: the noncentral t with Welch-Satterthwaite's degrees of freedom."""
    if n < 2:
        return 0.0
    se2 = (var_a + var_b) / n
    if se2 == 0:
        return 1.0 if diff != 0 else 0.0
    df = se2 * se2 / (((var_a / n) ** 2 + (var_b / n) ** 2) / (n - 1))
    ncp = abs(diff) / math.sqrt(se2)
    crit = float(scipy_stats.t.ppf(1 - alpha / 2, df))
    power = float(scipy_stats.nct.sf(crit, df, ncp) + scipy_stats.nct.cdf(-crit, df, ncp))
    if not math.isfinite(power):  # scipy's noncentral t gives NaN far in its tail, where the normal is exact enough
        power = float(scipy_stats.norm.sf(crit - ncp) + scipy_stats.norm.cdf(-crit - ncp))
    return power


def seeds_to_settle(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> int | None:
    """Seeds per config that would likely (`POWER`) tell these two apart at two-sided `alpha`, if the observed
    difference and variances are the truth (`welch_power`): always more than either side already ran, since the
    runs in hand did not settle it; MAX_SEEDS where even that many would not. None without two seeds a side."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2:
        return None
    diff, var_a, var_b = _mean(xs) - _mean(ys), statistics.variance(xs), statistics.variance(ys)
    low, high = max(len(xs), len(ys)) + 1, MAX_SEEDS
    if welch_power(diff, var_a, var_b, high, alpha) < POWER:
        return MAX_SEEDS
    while low < high:  # power grows with n: the smallest n that reaches POWER
        mid = (low + high) // 2
        if welch_power(diff, var_a, var_b, mid, alpha) >= POWER:
            high = mid
        else:
            low = mid + 1
    return low


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment, in the given order: the k-th smallest of m p's is multiplied by m - k + 1,
    kept no smaller than the one before it, capped at 1. NaN entries stay NaN and do not count in m."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    out = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - k) * p))
        out[i] = running
    return out


def _json(value: float | None) -> float | None:
    """A JSON number, or null for NaN (one seed has no interval): the report's JSON stays strict."""
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class Answer:
    """The best config for one question, how sure that is, and what would settle it when it is not.

    `p_value` is Welch's, raw; `p_adjusted` is Holm's over the `comparisons` a report makes (`holm_answers`; the
    same as `p_value` for an answer alone) and decides `settled`. `equivalent` is the TOST verdict, also adjusted.
    An `exact` metric (parameters, FLOPs) has no seed noise: it is compared, not tested.
    """

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
    p_adjusted: float | None = None
    tost_p: float | None = None
    tost_p_adjusted: float | None = None
    equivalent: bool = False
    exact: bool = False
    comparisons: int = 1  # how many comparisons the Holm adjustment spans
    level: float = ALPHA  # the raw p Holm's method needs of this comparison to settle it: `seeds_needed` aims at it
    samples: tuple[tuple[float, ...], tuple[float, ...]] = field(default=((), ()), repr=False)
    note: str = ""  # whether the two had converged, and who led over the epochs (`aebench.report.convergence`)

    def _p(self) -> str:
        adjusted = (
            ""
            if self.comparisons < 2 or self.p_adjusted is None
            else (f", Holm-adjusted {self.p_adjusted:.2g} over {self.comparisons} comparisons")
        )
        return f"p = {self.p_value:.2g}{adjusted}"

    def _equal(self) -> str:
        adjusted = (
            ""
            if self.comparisons < 2 or self.tost_p_adjusted is None
            else (f", Holm-adjusted {self.tost_p_adjusted:.2g}")
        )
        return (f"{self.best} and {self.runner_up} are equal within ±{EQUIVALENCE_MARGIN:.0%} of their mean "
                f"(equivalence test, two one-sided Welch tests: p = {self.tost_p:.2g}{adjusted})")  # fmt: skip

    def sentence(self) -> str:
        """The answer as a reader wants it: the best, whether the runs settle it, whether it may be the budget's."""
        text = self._sentence()
        return f"{text}; {self.note}" if self.note else text

    def _sentence(self) -> str:
        if self.runner_up is None:
            return f"{self.best} (the only config)"
        if self.exact:
            if self.settled:
                return f"{self.best}, ahead of {self.runner_up} (an exact value: no seed noise)"
            return f"tied: {self.best} and {self.runner_up} have the same value"
        if self.settled:
            return f"{self.best}, ahead of {self.runner_up} (Welch's t-test {self._p()})"
        if self.equivalent:
            return f"not told apart: {self._equal()}"
        return f"not settled: {self.best} leads {self.runner_up} ({self._why()}){self._more()}"

    def _why(self) -> str:
        if self.p_value is None:
            return "one seed per config"
        return f"{self._p()}; not shown equal within ±{EQUIVALENCE_MARGIN:.0%} either"

    def _more(self) -> str:
        if self.seeds_needed is None:
            return "; run --seeds 3 or more to tell"
        if self.seeds_needed >= MAX_SEEDS:
            return f"; {MAX_SEEDS} or more seeds per config would be needed to tell them apart"
        level = "" if self.comparisons < 2 else f" at p < {self.level:.2g}, its level under Holm's method"
        return f"; about {self.seeds_needed} seeds per config would likely settle it ({POWER:.0%} power{level})"

    def verdict(self) -> str:
        """The answer's standing, short, for a table's "settled" column."""
        if self.settled:
            return "yes"
        if self.runner_up is None:
            return "only config"
        if self.exact:
            return "tied"
        if self.equivalent:
            return f"equal within ±{EQUIVALENCE_MARGIN:.0%} (TOST)"
        return f"no{self._more().replace(';', ':', 1)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question, "metric": self.metric, "best": self.best, "mean": self.mean,
            "ci95": _json(self.ci95), "runner_up": self.runner_up, "runner_up_mean": self.runner_up_mean,
            "p_value": self.p_value, "p_adjusted": self.p_adjusted, "comparisons": self.comparisons,
            "settled": self.settled, "tost_p": self.tost_p, "tost_p_adjusted": self.tost_p_adjusted,
            "equivalence_margin": EQUIVALENCE_MARGIN, "equivalent": self.equivalent, "exact": self.exact,
            "seeds_needed": self.seeds_needed, "answer": self.sentence(), "convergence": self.note or None,
        }  # fmt: skip


def _judged(a: Answer, p_adjusted: float | None, tost_adjusted: float | None, comparisons: int,
            level: float) -> Answer:  # fmt: skip
    """`a` judged at these adjusted p's: settled, shown equal, or the seeds that would likely settle it."""
    xs, ys = a.samples
    if a.exact:
        settled = a.runner_up_mean is not None and a.runner_up_mean != a.mean
        return replace(a, settled=settled, p_adjusted=p_adjusted, comparisons=comparisons, level=level)
    settled = p_adjusted is not None and p_adjusted < ALPHA
    equivalent = not settled and tost_adjusted is not None and tost_adjusted < ALPHA
    needed = None if settled or equivalent else seeds_to_settle(xs, ys, level)
    return replace(a, p_adjusted=p_adjusted, tost_p_adjusted=tost_adjusted, settled=settled, equivalent=equivalent,
                   seeds_needed=needed, comparisons=comparisons, level=level)  # fmt: skip


def answer(question: str, metric: str, better: str, named: Sequence[tuple[str, Sequence[float]]]) -> Answer | None:
    """The best of `named` (label, seed values) on `metric` ("min" or "max" better), against the runner-up,
    judged alone; `holm_answers` judges a report's answers together."""
    scored = [(label, _finite(values)) for label, values in named]
    scored = [(label, xs) for label, xs in scored if xs]
    if not scored:
        return None
    sign = 1.0 if better == "min" else -1.0
    scored.sort(key=lambda item: sign * _mean(item[1]))
    (best, xs), rest = scored[0], scored[1:]
    column = COLUMNS.get(metric)
    base = Answer(question, metric, best, _mean(xs), ci95(xs), None, None, None, False, None,
                  samples=(tuple(xs), ()))  # fmt: skip
    if not rest:
        return base
    second, ys = rest[0]
    no_spread = len(set(xs)) == 1 and len(set(ys)) == 1 and len(xs) > 1 and len(ys) > 1
    exact = (column is not None and column.exact) or no_spread
    p, tost = welch_p(xs, ys), tost_p(xs, ys)
    got = replace(
        base,
        runner_up=second,
        runner_up_mean=_mean(ys),
        p_value=None if math.isnan(p) else p,
        tost_p=None if exact or math.isnan(tost) else tost,
        exact=exact,
        samples=(tuple(xs), tuple(ys)),
    )
    return _judged(got, got.p_value, got.tost_p, 1, ALPHA)


def holm_answers(answers: Sequence[Answer]) -> list[Answer]:
    """The answers judged together, in the same order: Holm's adjustment over every tested difference (exact
    metrics are compared, not tested, and stay out), and separately over every equivalence test, since "not told
    apart" is a claim as well; `settled` and `equivalent` follow the adjusted p's, and the seeds estimate aims at
    the raw p Holm's method would need of a comparison to settle it too."""
    tested = [i for i, a in enumerate(answers) if a.p_value is not None and not a.exact]
    raw = [answers[i].p_value or 0.0 for i in tested]
    adjusted = dict(zip(tested, holm(raw), strict=True))
    # with r of the m settled, one more is settled (the rest held as they are) exactly when its p < ALPHA / (m - r)
    level = ALPHA / max(1, len(tested) - sum(p < ALPHA for p in adjusted.values()))
    shown = [i for i, a in enumerate(answers) if a.tost_p is not None]
    tost_adjusted = dict(zip(shown, holm([answers[i].tost_p or 0.0 for i in shown]), strict=True))
    out = []
    for i, a in enumerate(answers):
        if a.runner_up is None:
            out.append(a)
        elif a.exact:
            out.append(_judged(a, a.p_value, None, len(tested), ALPHA))
        else:
            at = level if i in adjusted else ALPHA  # one seed a side: nothing tested, nothing to aim at
            out.append(_judged(a, adjusted.get(i), tost_adjusted.get(i), len(tested), at))
    return out
