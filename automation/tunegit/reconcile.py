"""Reconcile (pure): desired runs + recorded status + what the scheduler says -> actions.

Ordered steps, each a no-op when already done (Flux style):
1. observe: live steps move to the state their job is in (unknown this cycle: unchanged);
2. adopt: a pending step whose deterministic job name the scheduler already knows was
   submitted before a crash: record it, never submit it twice;
3. block: evaluations of a fine-tuning run that failed, was cancelled or blocked;
4. submit: fine-tuning first, then evaluations whose checkpoint exists (or, where the
   scheduler enforces dependencies, chained on their live fine-tuning job), within capacity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tunegit.records import Transition
from tunegit.executors.base import Poll
from tunegit.executors.slurm_parse import status_from_observation
from tunegit.expand import Expansion
from tunegit.scaffold import job_name
from tunegit.states import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    LIVE_STATES,
    PENDING,
    REASON_DEPENDENCY_FAILED,
    SKIPPED,
    SUBMITTED,
)
from tunegit.status import StatusFile, Step

DEAD = frozenset({FAILED, CANCELLED, BLOCKED})


@dataclasses.dataclass(frozen=True)
class Submission:
    run: str
    key: str | None  # None: fine-tuning
    name: str  # deterministic job name
    after: tuple[str, ...] = ()  # job names that must complete first


@dataclasses.dataclass(frozen=True)
class Decision:
    status: StatusFile
    submit: tuple[Submission, ...]
    transitions: tuple[Transition, ...]


def stage(key: str | None) -> str:
    return "ft" if key is None else key


def step_name(experiment: str, run: str, key: str | None, step: Step) -> str:
    return step.job_name or job_name(experiment, run, stage(key), step.attempt or 1)


def wanted_names(experiment: str, status: StatusFile) -> dict[str, tuple[str, str | None]]:
    """Job names of pending steps, to look up before submitting (crash safety)."""
    return {step_name(experiment, run, key, step): (run, key)
            for run, key, step in status.steps() if step.status == PENDING}


def live_job_ids(status: StatusFile) -> list[str]:
    return [s.job_id for _, _, s in status.steps() if s.status in LIVE_STATES and s.job_id]


class _Pass:
    def __init__(self, experiment: str, status: StatusFile, now: str):
        self.experiment = experiment
        self.status = status
        self.now = now
        self.transitions: list[Transition] = []

    def move(self, run: str, key: str | None, new: str, **changes: object) -> None:
        old = self.status.step(run, key)
        step = old.moved(new, self.now, **changes)
        if step == old:
            return
        self.status = self.status.with_step(run, key, step)
        if new != old.status:
            self.transitions.append(Transition(self.experiment, run, key, old.status, new,
                                               step.job_id, step.reason))


def decide(exp: Expansion, status: StatusFile, poll: Poll, *, experiment: str, now: str,
           capacity: int | None, dependencies: bool,
           logs: Mapping[str, str] | None = None) -> Decision:
    p = _Pass(experiment, status, now)
    if poll.ok:
        _observe(p, poll, logs or {})
        _adopt(p, poll)
    _block(p, exp)
    submit = _submissions(p, exp, capacity, dependencies)
    return Decision(p.status, tuple(submit), tuple(p.transitions))


def _observe(p: _Pass, poll: Poll, logs: Mapping[str, str]) -> None:
    for run, key, step in p.status.steps():
        if step.status not in LIVE_STATES or not step.job_id:
            continue
        obs = poll.jobs.get(step.job_id)
        if obs is None:
            continue
        new, reason, message = status_from_observation(obs, logs.get(step.job_id))
        if new is None:
            continue
        p.move(run, key, new, reason=reason or None, message=message or None,
               started=obs.start or step.started, ended=obs.end or step.ended,
               elapsed_s=obs.elapsed_s if obs.elapsed_s is not None else step.elapsed_s,
               exit_code=obs.exit_code if obs.exit_code is not None else step.exit_code)


def _adopt(p: _Pass, poll: Poll) -> None:
    for name, (run, key) in wanted_names(p.experiment, p.status).items():
        job_id = poll.names.get(name)
        if job_id:
            p.move(run, key, SUBMITTED, job_id=job_id, job_name=name, attempt=1,
                   message="found in the scheduler by its job name (submitted before a restart)")


def _block(p: _Pass, exp: Expansion) -> None:
    for run in exp.runs:
        ft = p.status.runs[run.name].finetune
        if ft.status not in DEAD:
            continue
        for key, step in p.status.runs[run.name].evaluations.items():
            if step.status == PENDING:
                p.move(run.name, key, BLOCKED, reason=REASON_DEPENDENCY_FAILED,
                       message=f"fine-tuning {ft.status}"
                       + (f" ({ft.reason})" if ft.reason else "") + "; nothing to evaluate")


def _submissions(p: _Pass, exp: Expansion, capacity: int | None,
                 dependencies: bool) -> list[Submission]:
    live = sum(1 for _, _, s in p.status.steps() if s.status in LIVE_STATES)
    room = None if capacity is None else max(0, capacity - live)
    out: list[Submission] = []

    def add(sub: Submission) -> None:
        if room is None or len(out) < room:
            out.append(sub)

    for run in exp.finetuned:
        if p.status.runs[run.name].finetune.status == PENDING:
            add(Submission(run.name, None, job_name(p.experiment, run.name, "ft")))
    for run in exp.runs:
        ft = p.status.runs[run.name].finetune
        ready = ft.status in (COMPLETED, SKIPPED)
        chained = dependencies and (ft.status in LIVE_STATES or
                                    any(s.run == run.name and s.key is None for s in out))
        if not (ready or chained):
            continue
        after = () if ready else (step_name(p.experiment, run.name, None, ft),)
        for key, step in p.status.runs[run.name].evaluations.items():
            if step.status == PENDING:
                add(Submission(run.name, key, job_name(p.experiment, run.name, key), after))
    return out
