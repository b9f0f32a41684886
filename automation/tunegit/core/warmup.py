"""Learning-rate warmup, in optimizer steps: a share of the run, not a fixed count.

A fixed 100 steps (torchtune's recipe configs, written for runs of thousands of steps)
spends half of a 200-step run warming up. By default a run warms up for 5% of its
optimizer steps (at least 1, at most those 100); a plan may set ``warmup_steps``, and a
run shorter than three times its warmup is warned about.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunegit.core.estimate import RunEstimate

SHARE = 0.05  # of the run's optimizer steps
MAX_DEFAULT = 100  # torchtune's recipe configs' value, for runs whose length is unknown
TEST_MODEL = 5  # tunegit's tiny model: the demo's recorded results were trained with it
TOO_SHORT = 3  # a run should be at least this many times its warmup


def total_steps(steps_per_epoch: int | None, epochs: int, cap: int | None) -> int | None:
    """Optimizer steps of a run (``cap``: max_steps_per_epoch); None when unknown."""
    if steps_per_epoch is None:
        return None
    return min(steps_per_epoch, cap or steps_per_epoch) * epochs


def run_steps(est: RunEstimate) -> int | None:
    """A run's optimizer steps as its estimate knows them (None: dataset not visible)."""
    t = est.run.training
    return total_steps(est.steps_per_epoch, t.epochs, t.max_steps_per_epoch)


def warmup_steps(explicit: int | None, total: int | None, *, test_model: bool = False) -> int:
    """The plan's value, else 5% of the run's steps (1..100), else 100 when its length is
    unknown (the dataset not visible); the tiny test model keeps its 5."""
    if explicit is not None:
        return explicit
    if test_model:
        return TEST_MODEL
    if total is None:
        return MAX_DEFAULT
    return max(1, min(MAX_DEFAULT, math.ceil(total * SHARE)))


def too_short(warmup: int, total: int | None) -> bool:
    return total is not None and total < TOO_SHORT * warmup
