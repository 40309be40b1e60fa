"""The report's statistics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from aebench.report.stats import answer, ci95, seeds_to_settle, welch_p

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


def test_seeds_to_settle() -> None:
    # difference 1, both variances 1: 2 (1.95996 + 0.84162)^2 * 1 / 1^2 = 15.70 -> 16 seeds per config
    assert seeds_to_settle([1, 2, 3], [2, 3, 4]) == 16
    assert seeds_to_settle([1], [2, 3]) is None


def test_answers_say_when_a_question_is_not_settled() -> None:
    sure = answer("best?", "test_mse", "min", [("a", [1, 2, 3]), ("b", [4, 5, 6]), ("c", [9])])
    assert sure is not None and sure.best == "a" and sure.runner_up == "b" and sure.settled
    assert sure.mean == 2.0 and sure.ci95 == pytest.approx(2.4841377) and 0 <= (sure.p_value or -1) <= 1
    assert "ahead of b" in sure.sentence()
    close = answer("best?", "test_mse", "min", [("a", [1, 2, 3]), ("b", [2, 3, 4])])
    assert close is not None and not close.settled and close.seeds_needed == 16
    assert close.sentence().startswith("not settled: a leads b") and "16 seeds" in close.sentence()
    one_seed = answer("fastest?", "train_samples_per_s", "max", [("a", [10.0]), ("b", [20.0])])
    assert one_seed is not None and one_seed.best == "b" and one_seed.p_value is None and not one_seed.settled
    assert "one seed per config" in one_seed.sentence() and "--seeds 3" in one_seed.sentence()
    # an exact metric two configs share is a tie, not a question more seeds could settle
    tie = answer("smallest?", "params", "min", [("pool", [19731, 19731, 19731]), ("stride", [19731, 19731, 19731])])
    assert tie is not None and tie.sentence() == "tied: pool and stride have the same value"
    noise = answer("best?", "test_mse", "min", [("a", [1.0, 2.0, 3.0]), ("b", [1.001, 2.0, 3.0])])
    assert noise is not None and noise.seeds_needed == 1000
    assert "within seed noise of each other" in noise.sentence() and "1000" not in noise.sentence()
