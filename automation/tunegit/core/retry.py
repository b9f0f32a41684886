"""Retry requests (experiments/NAME/retry.yaml) against the recorded status, pure.

A request names a step and the attempt it asks for. Against the status it is one of:
- applied: the step (or one of its earlier attempts) records the request: nothing to do;
- due: the step failed, was cancelled or blocked, and the request asks for its next
  attempt: the watcher applies it (``apply``), recording the request on the new attempt;
- refused: anything else (no such run, a step that is live or completed, another
  attempt number): `tunegit check` says why, located, and the watcher never applies it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tunegit.core.reconcile import RETRYABLE, retry
from tunegit.core.records import Transition
from tunegit.core.status import StatusFile, Step
from tunegit.spec.retry import RetryRequest

APPLIED, DUE, REFUSED = "applied", "due", "refused"


@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: str  # APPLIED | DUE | REFUSED
    field: str = ""  # the request's field a refusal is about
    message: str = ""
    hint: str = ""


@dataclasses.dataclass(frozen=True)
class Requester:
    """Who asked for a retry: the author of the commit that brought the request to the
    protected branch (for a pull request, its merge commit), and that commit."""

    by: str
    commit: str


def next_attempt(step: Step) -> int:
    """The attempt number a retry of ``step`` gets (a step that never had a job keeps its)."""
    current = step.attempt or 1
    return current + 1 if (step.job_id or step.job_name) else current


def applied_ids(step: Step) -> set[str]:
    records = [step.requested, *(a.get("requested") for a in step.attempts)]
    return {str(r["id"]) for r in records if isinstance(r, Mapping) and "id" in r}


def judge(status: StatusFile, request: RetryRequest) -> Verdict:
    if request.run not in status.runs:
        return Verdict(REFUSED, "run", f"no run {request.run!r} in runs_status.yaml",
                       f"runs: {', '.join(status.runs) or 'none'}")
    evaluations = status.runs[request.run].evaluations
    if request.eval is not None and request.eval not in evaluations:
        return Verdict(REFUSED, "eval", f"run {request.run} has no evaluation {request.eval!r}",
                       f"evaluations: {', '.join(evaluations) or 'none'}; leave `eval` out "
                       "to retry the fine-tuning")
    step = status.step(request.run, request.eval)
    if request.id in applied_ids(step):
        return Verdict(APPLIED)
    if step.status not in RETRYABLE:
        return Verdict(REFUSED, "run" if request.eval is None else "eval",
                       f"{request.step} is {step.status}; only a failed, cancelled or blocked "
                       "step gets a new attempt",
                       "remove this entry (`git pull` first if the watcher recorded a failure "
                       "since)")
    wanted = next_attempt(step)
    if request.attempt != wanted:
        return Verdict(REFUSED, "attempt", f"{request.step} is at attempt {step.attempt or 1} "
                       f"({step.status}): the new attempt is {wanted}, not {request.attempt}",
                       f"write `attempt: {wanted}`")
    return Verdict(DUE)


def apply(status: StatusFile, experiment: str, request: RetryRequest, now: str,
          requester: Requester | None) -> tuple[StatusFile, tuple[Transition, ...]]:
    """A due request's new attempt (``retry``), with the request recorded on the step."""
    status, transitions = retry(status, experiment, request.run, request.eval, now)
    record: dict[str, Any] = {"id": request.id, "reason": request.reason}
    if requester is not None:
        record.update(by=requester.by, commit=requester.commit)
    step = status.step(request.run, request.eval)
    status = status.with_step(request.run, request.eval,
                              dataclasses.replace(step, requested=record))
    said = requested_text(record)
    return status, tuple(dataclasses.replace(t, message=said)
                         if (t.run, t.key) == (request.run, request.eval) else t
                         for t in transitions)


def requested_text(record: Mapping[str, Any]) -> str:
    """`retry requested by Alice <a@x> in 1a2b3c4d5e: the task's bug is fixed`."""
    who = f" by {record['by']}" if record.get("by") else ""
    where = f" in {str(record['commit'])[:10]}" if record.get("commit") else ""
    return f"retry requested{who}{where}: {record.get('reason', '')}"
