"""The statistics behind the results' intervals, against answers known without scipy:
Newcombe's textbook Wilson intervals, and paired examples whose interval follows by hand."""

from __future__ import annotations

import pytest

from tunegit.core.stats import (
    BOOTSTRAP,
    PAIRED_BOOTSTRAP,
    WILSON,
    bootstrap_mean,
    mean_estimate,
    paired_difference,
    wilson,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score, no
# continuity correction), 95%, to the 4 decimals printed there.
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("successes", "n", "low", "high"), NEWCOMBE,
                         ids=[f"{k}/{n}" for k, n, _, _ in NEWCOMBE])
def test_wilson_interval_matches_newcombes_table(successes: int, n: int, low: float,
                                                 high: float) -> None:
    interval = wilson(successes, n)
    assert interval is not None and interval.method == WILSON
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_wilson_interval_of_all_correct_stays_below_one_and_of_nothing_is_none() -> None:
    interval = wilson(20, 20)
    assert interval is not None
    assert (round(interval.low, 4), interval.high) == (0.8389, 1.0)  # 1 - Newcombe's 0/20
    assert wilson(0, 0) is None


def test_an_accuracy_gets_wilson_and_any_other_mean_a_bootstrap() -> None:
    accuracy = mean_estimate([1.0, 0.0, 1.0, 1.0])
    assert accuracy is not None and (accuracy.value, accuracy.n) == (0.75, 4)
    assert accuracy.interval == wilson(3, 4)
    graded = mean_estimate([0.5, 0.25, 1.0, 0.75])
    assert graded is not None and graded.interval is not None
    assert graded.interval.method == BOOTSTRAP
    assert 0.25 <= graded.interval.low < 0.625 < graded.interval.high <= 1.0
    assert mean_estimate([]) is None


def test_bootstrap_of_a_constant_is_that_constant_and_of_one_value_is_none() -> None:
    interval = bootstrap_mean([0.5] * 7)
    assert interval is not None and (interval.low, interval.high) == (0.5, 0.5)
    assert bootstrap_mean([0.5]) is None


def test_bootstrap_is_seeded_the_same_scores_give_the_same_interval() -> None:
    values = [0.1, 0.9, 0.4, 0.35, 0.8, 0.05, 0.6]
    assert bootstrap_mean(values) == bootstrap_mean(values)
    assert bootstrap_mean(values, seed=1) != bootstrap_mean(values, seed=2)


def test_every_sample_one_better_than_base_gives_exactly_one_whatever_the_spread() -> None:
    # Sample difficulty varies widely, but each sample improves by exactly 1: the paired
    # interval is [1, 1]. Ids are matched by name, not by position.
    base = {"d": 9.0, "a": 0.0, "e": 4.0, "b": 5.0, "c": 2.0}
    tuned = {"e": 5.0, "d": 10.0, "c": 3.0, "b": 6.0, "a": 1.0}
    diff = paired_difference(tuned, base)
    assert diff is not None and diff.interval is not None
    assert (diff.value, diff.n) == (1.0, 5)
    assert (diff.interval.low, diff.interval.high, diff.interval.method) == (
        1.0, 1.0, PAIRED_BOOTSTRAP)
    # Unpaired, the same scores could not tell a difference from noise.
    unpaired_tuned, unpaired_base = bootstrap_mean(list(tuned.values())), bootstrap_mean(
        list(base.values()))
    assert unpaired_tuned is not None and unpaired_base is not None
    assert unpaired_tuned.low < unpaired_base.high


def test_one_of_two_samples_improving_gives_the_whole_range_from_zero_to_one() -> None:
    # Differences {0, 1}: a resampled mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5th percentile is 0 and the 97.5th is 1.
    diff = paired_difference({"x": 1.0, "y": 1.0}, {"x": 0.0, "y": 1.0})
    assert diff is not None and diff.interval is not None
    assert (diff.value, diff.interval.low, diff.interval.high) == (0.5, 0.0, 1.0)


def test_paired_difference_uses_only_the_sample_ids_both_runs_have() -> None:
    diff = paired_difference({"1": 1.0, "2": 1.0, "3": 0.0}, {"2": 0.0, "3": 0.0, "4": 1.0})
    assert diff is not None and (diff.value, diff.n) == (0.5, 2)
    assert paired_difference({"1": 1.0}, {"2": 1.0}) is None
    single = paired_difference({"1": 1.0}, {"1": 0.0})
    assert single is not None and (single.value, single.n, single.interval) == (1.0, 1, None)
