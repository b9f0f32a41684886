"""What a reconcile cycle reports: transitions, typed errors and their summary."""

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
    message: str | None = None  # for a step that failed: its cause, with its log's path


# What a cycle error means for what happens next; callers decide by kind, never by its text.
INVALID_PLAN = "invalid plan"  # nothing of the experiment runs until its plan (or site) changes
CONFLICT = "conflict"  # a generated file was edited by hand: its run is held, the others go on
SUBMIT_REFUSED = "submit refused"  # the scheduler refused a job: its step failed (`tunegit retry`)
SUBMIT_DEFERRED = "submit deferred"  # refused for now (a limit): pending, tried again later
SCHEDULER_UNANSWERED = "scheduler unanswered"  # states unknown this cycle: back off and retry
UNTRUSTED = "untrusted"  # its site requires signed commits and the plan commit is not
REQUEST_REFUSED = "request refused"  # a retry.yaml entry that cannot apply: the rest goes on
STOPPED = "stopped"  # any other error the user can fix: the experiment waits, nothing submitted
CYCLE_ERROR_KINDS = (INVALID_PLAN, CONFLICT, SUBMIT_REFUSED, SUBMIT_DEFERRED,
                     SCHEDULER_UNANSWERED, UNTRUSTED, REQUEST_REFUSED, STOPPED)


@dataclasses.dataclass(frozen=True)
class CycleError:
    """One experiment's problem this cycle; prints as ``<experiment>: <message>``."""

    experiment: str
    kind: str  # one of CYCLE_ERROR_KINDS
    message: str

    def __str__(self) -> str:
        return f"{self.experiment}: {self.message}"


@dataclasses.dataclass(frozen=True)
class CycleResult:
    transitions: tuple[Transition, ...]
    written: tuple[Path, ...]  # status and results files whose bytes changed this cycle
    live: int  # steps still submitted or running after this cycle
    pending: int  # steps not yet submitted (waiting on a dependency or capacity)
    errors: tuple[CycleError, ...] = ()  # per-experiment problems, by kind
