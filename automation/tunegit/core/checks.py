"""What resource verification found, as records (pure): checks and dataset shapes.

``tunegit.edges.verify`` makes them by looking at the filesystem; estimates read the
datasets' sizes and the plan document lists the checks.
"""

from __future__ import annotations

import dataclasses

from tunegit.errors import Problem

NOT_VERIFIABLE = "not verifiable here"


@dataclasses.dataclass(frozen=True)
class Check:
    action: str  # VERIFY_MODEL, VERIFY_DATASET, VERIFY_EVAL_SCRIPT
    subject: str
    command: str
    result: str
    ok: bool | None  # None: not verifiable here
    explanation: str


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    path: str  # as written in the plan
    resolved: str
    size_bytes: int
    splits: tuple[tuple[str, int], ...]
    mean_chars: float  # mean characters of input + output per example
    max_chars: float = 0.0  # the longest example's input + output (0: not measured)

    def count(self, split: str) -> int | None:
        return dict(self.splits).get(split)

    @property
    def longest_chars(self) -> float:
        return max(self.max_chars, self.mean_chars)


@dataclasses.dataclass(frozen=True)
class Verification:
    checks: tuple[Check, ...]
    datasets: dict[str, DatasetInfo]
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
