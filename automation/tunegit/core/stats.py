"""Uncertainty of a score: 95% intervals, computed by scipy (pure: numbers in, numbers out).

- an accuracy (every per-sample value 0 or 1) gets the Wilson score interval of
  ``successes / n`` (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``): it stays
  inside [0, 1] and is honest at 0/n and n/n, where the normal approximation collapses;
- any other mean gets a percentile bootstrap over its samples;
- a fine-tuned run against its base model: the mean of the per-sample differences on the
  sample ids both were scored on, with a paired percentile bootstrap over those ids (the
  same ids are drawn for both runs, so how hard a sample is cancels out).

Bootstraps draw from ``numpy.random.default_rng(seed)``: the same scores give the same
interval, so results files do not change from one pass to the next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

# numpy and scipy (half a second to import) are imported where an interval is computed: the
# watcher and `tunegit run` import this module on every start, and most cycles compute none.
if TYPE_CHECKING:
    import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
WILSON = "wilson"
BOOTSTRAP = "bootstrap"
PAIRED_BOOTSTRAP = "paired bootstrap"


@dataclasses.dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # WILSON, BOOTSTRAP or PAIRED_BOOTSTRAP

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` samples and its interval (None when ``n`` is too small for one)."""

    value: float
    n: int
    interval: Interval | None


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval of ``successes / n``; None for n = 0."""
    if n <= 0:
        return None
    from scipy import stats

    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence,
                                                     method="wilson")
    return Interval(float(ci.low), float(ci.high), WILSON)


def is_binary(values: Sequence[float]) -> bool:
    return bool(values) and all(v in (0.0, 1.0) for v in values)


def mean_estimate(values: Sequence[float], *, seed: int = SEED) -> Estimate | None:
    """The mean of per-sample values with its interval: Wilson when every value is 0 or 1
    (an accuracy), a percentile bootstrap otherwise. None for no values."""
    if not values:
        return None
    import numpy as np

    n = len(values)
    mean = float(np.mean(values))
    if is_binary(values):
        return Estimate(mean, n, wilson(int(sum(values)), n))
    return Estimate(mean, n, bootstrap_mean(values, seed=seed))


def bootstrap_mean(values: Sequence[float], *, seed: int = SEED,
                   resamples: int = RESAMPLES) -> Interval | None:
    """Percentile bootstrap interval of the mean; None for fewer than two values."""
    if len(values) < 2:
        return None
    import numpy as np
    from scipy import stats

    result = stats.bootstrap((np.asarray(values, dtype=float),), np.mean,
                             confidence_level=CONFIDENCE, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(float(ci.low), float(ci.high), BOOTSTRAP)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    difference: np.ndarray = np.mean(a - b, axis=axis)
    return difference


def paired_difference(treated: Mapping[str, float], control: Mapping[str, float], *,
                      seed: int = SEED, resamples: int = RESAMPLES) -> Estimate | None:
    """Mean of ``treated[id] - control[id]`` over the sample ids both have, with a paired
    percentile bootstrap over those ids; None when they share none."""
    shared = sorted(set(treated) & set(control))
    if not shared:
        return None
    import numpy as np
    from scipy import stats

    a = np.array([treated[i] for i in shared], dtype=float)
    b = np.array([control[i] for i in shared], dtype=float)
    value = float(np.mean(a - b))
    if len(shared) < 2:
        return Estimate(value, 1, None)
    result = stats.bootstrap((a, b), _mean_difference, paired=True, vectorized=True,
                             confidence_level=CONFIDENCE, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Estimate(value, len(shared),
                    Interval(float(ci.low), float(ci.high), PAIRED_BOOTSTRAP))
