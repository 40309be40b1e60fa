"""The report's statistics against values worked out by hand, or published ones."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from aebench.report.stats import (
    ALPHA,
    EQUIVALENCE_MARGIN,
    MAX_SEEDS,
    POWER,
    answer,
    ci95,
    holm,
    holm_answers,
    seeds_to_settle,
    tost_p,
    welch_p,
    welch_power,
)

# [1, 2, 3]: mean 2, sd 1; t(0.975, 2 df) = 4.302653 -> 4.302653 / sqrt(3)
CI_CASES = [([1.0, 2.0, 3.0], 2.4841377), ([5.0, 5.0], 0.0), ([0.5], math.nan), ([], math.nan)]


@pytest.mark.parametrize(("values", "half_width"), CI_CASES)
def test_ci95(values: list[float], half_width: float) -> None:
    got = ci95(values)
    assert math.isnan(got) if math.isnan(half_width) else got == pytest.approx(half_width, rel=1e-6)


def test_welch_p() -> None:
    # t = (2 - 5) / sqrt(1/3 + 1/3) = -3.6742; Welch's df = (2/3)^2 / (2 (1/3)^2 / 2) = 4; p = 2 sf(3.6742, 4)
    assert welch_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.0213116, rel=1e-5)
    assert welch_p([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert math.isnan(welch_p([1], [2, 3]))
    assert welch_p([2, 2], [2, 2]) == 1.0 and welch_p([2, 2], [3, 3]) == 0.0


def test_holm_against_a_hand_computation() -> None:
    # sorted 0.005 0.01 0.03 0.04, times 4 3 2 1: 0.02 0.03 0.06 0.04 -> kept rising: 0.02 0.03 0.06 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 * 2 caps at 1, and the next may not fall below it
    got = holm([0.02, math.nan, 0.01])  # NaN is no test: m = 2
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_welch_power_against_published_values() -> None:
    # Cohen's tables (and G*Power): d = 0.5 with 64 per group has 80.15% power, d = 1 with 17 per group 80.70%;
    # with equal variances and equal n Welch's df is Student's, 2 (n - 1)
    assert welch_power(0.5, 1.0, 1.0, 64) == pytest.approx(0.80146, abs=1e-4)
    assert welch_power(1.0, 1.0, 1.0, 17) == pytest.approx(0.80704, abs=1e-4)
    assert welch_power(1.0, 1.0, 1.0, 16) < POWER < welch_power(1.0, 1.0, 1.0, 17)
    # by hand: n = 3, d = 3, variances 1: ncp = 3 / sqrt(2/3), df 4, crit = t(0.975, 4)
    ncp, crit = 3 / math.sqrt(2 / 3), scipy_stats.t.ppf(0.975, 4)
    hand = scipy_stats.nct.sf(crit, 4, ncp) + scipy_stats.nct.cdf(-crit, 4, ncp)
    assert welch_power(3.0, 1.0, 1.0, 3) == pytest.approx(hand, rel=1e-9)
    assert welch_power(5.0, 1e-6, 1e-6, 500) == pytest.approx(1.0)  # far past where scipy's nct gives NaN


def test_seeds_to_settle_from_welch_power() -> None:
    # difference 1, both variances 1: 80% power first at 17 seeds per config (the normal approximation said 16)
    assert seeds_to_settle([1, 2, 3], [2, 3, 4]) == 17
    assert seeds_to_settle([1], [2, 3]) is None
    assert seeds_to_settle([1, 2, 3], [1, 2, 3]) == MAX_SEEDS  # no difference: no count of seeds finds one
    # a stricter level (Holm's, for one of four) needs more seeds
    assert seeds_to_settle([1, 2, 3], [4, 5, 6], ALPHA / 4) > seeds_to_settle([1, 2, 3], [4, 5, 6])  # type: ignore[operator]


def test_seeds_to_settle_always_exceeds_the_seeds_run() -> None:
    # p = 0.048 at 3 seeds: 2 (1.96 + 0.84)^2 / 2.3^2 = 2.97 said "about 3 seeds", where 3 ran; its power is ~55%
    xs, ys = [1.0, 2.0, 3.0], [3.3, 4.3, 5.3]
    assert welch_power(2.3, 1.0, 1.0, 3) == pytest.approx(0.55, abs=0.03)
    assert (seeds_to_settle(xs, ys) or 0) > 3
    # 3 seeds would already have 80% power at this difference, yet the estimate is more than the 3 in hand
    assert welch_power(3.5, 1.0, 1.0, 3) > POWER and seeds_to_settle([1, 2, 3], [4.5, 5.5, 6.5]) == 4
    assert seeds_to_settle([1, 2, 3, 4, 5], [9, 10, 11]) == 6  # more than the larger side ran


def test_tost_calls_equal_samples_equivalent_and_different_ones_not() -> None:
    same = [1.0, 1.001, 0.999]
    assert tost_p(same, same) < ALPHA
    assert tost_p(same, [1.05, 1.051, 1.049]) > 0.99  # 5% apart, outside the 2% margin
    assert tost_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) > ALPHA  # equal means, but too noisy to show it
    # by hand: delta = 0.02 * 1.0005 = 0.02001; d = -0.001, se = sqrt(2 * 1e-6 / 3); df 4; p = max of the two sides
    xs, ys = [1.0, 1.001, 0.999], [1.001, 1.002, 1.0]
    delta, se = EQUIVALENCE_MARGIN * 1.0005, math.sqrt(2e-6 / 3)
    hand = max(scipy_stats.t.sf((-0.001 + delta) / se, 4), scipy_stats.t.cdf((-0.001 - delta) / se, 4))
    assert tost_p(xs, ys) == pytest.approx(hand, rel=1e-6)
    assert tost_p([2, 2], [2.01, 2.01]) == 0.0 and tost_p([2, 2], [3, 3]) == 1.0 and math.isnan(tost_p([1], [1, 2]))


def test_answers_say_when_a_question_is_not_settled() -> None:
    sure = answer("best?", "test_mse", "min", [("a", [1, 2, 3]), ("b", [4, 5, 6]), ("c", [9])])
    assert sure is not None and sure.best == "a" and sure.runner_up == "b" and sure.settled
    assert sure.mean == 2.0 and sure.ci95 == pytest.approx(2.4841377) and sure.p_value == sure.p_adjusted
    assert sure.sentence() == "a, ahead of b (Welch's t-test p = 0.021)"
    close = answer("best?", "test_mse", "min", [("a", [1, 2, 3]), ("b", [2, 3, 4])])
    assert close is not None and not close.settled and not close.equivalent and close.seeds_needed == 17
    assert close.sentence() == (
        "not settled: a leads b (p = 0.29; not shown equal within ±2% either); "
        "about 17 seeds per config would likely settle it (80% power)"
    )
    one_seed = answer("fastest?", "train_samples_per_s", "max", [("a", [10.0]), ("b", [20.0])])
    assert one_seed is not None and one_seed.best == "b" and one_seed.p_value is None and not one_seed.settled
    assert "one seed per config" in one_seed.sentence() and "--seeds 3" in one_seed.sentence()
    # an exact metric two configs share is a tie, not a question more seeds could settle; one that differs is settled
    tie = answer("smallest?", "params", "min", [("pool", [19731, 19731, 19731]), ("stride", [19731, 19731, 19731])])
    assert tie is not None and tie.sentence() == "tied: pool and stride have the same value"
    assert tie.exact and tie.verdict() == "tied"
    smaller = answer("smallest?", "params", "min", [("a", [225]), ("b", [19731])])
    assert smaller is not None and smaller.settled
    assert smaller.sentence() == "a, ahead of b (an exact value: no seed noise)"
    # equal means, but noise 1000x the difference: not "within seed noise", not settled
    noise = answer("best?", "test_mse", "min", [("a", [1.0, 2.0, 3.0]), ("b", [1.001, 2.0, 3.0])])
    assert noise is not None and noise.seeds_needed == MAX_SEEDS and not noise.equivalent
    assert noise.sentence().endswith("; 1000 or more seeds per config would be needed to tell them apart")
    assert "noise" not in noise.sentence()


def test_an_answer_is_told_apart_only_by_an_equivalence_test() -> None:
    equal = answer("best?", "test_mse", "min", [("a", [1.0, 1.001, 0.999]), ("b", [1.0005, 1.0015, 0.9995])])
    assert equal is not None and equal.equivalent and not equal.settled and equal.seeds_needed is None
    assert (equal.tost_p or 1) < ALPHA
    assert equal.sentence() == (
        "not told apart: a and b are equal within ±2% of their mean "
        "(equivalence test, two one-sided Welch tests: p = 9.1e-06)"
    )
    assert equal.verdict() == "equal within ±2% (TOST)" and equal.to_json()["equivalence_margin"] == 0.02


def test_holm_answers_judge_every_comparison_together() -> None:
    named = {  # raw Welch p: 0.0213 (1, 2, 3 against 4, 5, 6), 0.0071, 0.29, and one exact metric
        "wide": [("a", [1, 2, 3]), ("b", [4, 5, 6])],
        "far": [("a", [1, 2, 3]), ("b", [5, 6, 7])],
        "close": [("a", [1, 2, 3]), ("b", [2, 3, 4])],
    }
    alone = [answer(q, "test_mse", "min", n) for q, n in named.items()]
    size = answer("smallest?", "params", "min", [("a", [10, 10]), ("b", [20, 20])])
    found = [a for a in [*alone, size] if a is not None]
    assert [a.settled for a in found] == [True, True, False, True]
    raw = [a.p_value or 0.0 for a in found[:3]]
    judged = holm_answers(found)
    assert [a.p_value for a in judged] == [a.p_value for a in found]  # the raw p stays beside the adjusted one
    assert [a.p_adjusted for a in judged[:3]] == pytest.approx(holm(raw))
    # by hand: 0.0071 * 3 = 0.0213; 0.0213 * 2 = 0.0426; 0.29 * 1, no lower than 0.0426
    assert judged[1].p_adjusted == pytest.approx(3 * raw[1]) and judged[0].p_adjusted == pytest.approx(2 * raw[0])
    assert [a.settled for a in judged] == [True, True, False, True] and judged[0].comparisons == 3
    assert judged[3].p_adjusted == 0.0 and judged[3].exact  # an exact metric is compared, not in the family
    assert "p = 0.021, Holm-adjusted 0.043 over 3 comparisons" in judged[0].sentence()
    # with two of three settled, the third needs p < 0.05 / 1 (Holm's last step): its level, and the seeds for it
    assert judged[2].level == pytest.approx(ALPHA) and judged[2].seeds_needed == 17
    # a fourth, close comparison makes the first fail: 0.0213 * 3 = 0.064
    more = holm_answers([*found, *(a for a in [answer("q", "test_mse", "min", named["close"])] if a is not None)])
    assert not more[0].settled and more[0].p_value == found[0].p_value and (more[0].p_adjusted or 0) > ALPHA
    assert (more[0].seeds_needed or 0) > 3 and more[0].level == pytest.approx(ALPHA / 3)
    assert "Holm-adjusted 0.064 over 4 comparisons" in more[0].sentence()
    assert f"at p < {ALPHA / 3:.2g}, its level under Holm's method" in more[0].sentence()
