"""What a reconcile cycle reports: transitions and their summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Transition:
    experiment: str
    run: str
    key: str | None  # None: the fine-tuning step; else the evaluation key
    old: str
    new: str
    job_id: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class CycleResult:
    transitions: tuple[Transition, ...]
    written: tuple[Path, ...]  # status files whose bytes changed this cycle
    live: int  # steps still submitted or running after this cycle
    pending: int  # steps not yet submitted (waiting on a dependency or capacity)
    errors: tuple[str, ...] = ()  # per-experiment problems (invalid plan, submit refused)
