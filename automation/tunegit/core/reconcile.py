"""Reconcile (pure): desired runs + recorded status + what the scheduler says -> actions.

Ordered steps, each a no-op when already done (Flux style); when the scheduler could
not be asked (``Poll.ok`` False) nothing moves and nothing is submitted:
1. observe: live steps move to the state their job is in (unknown this cycle: unchanged);
   a job the executor says it does not know at all is failed/JobLost once it has stayed
   unknown for ``JOB_LOST_GRACE_S``;
2. adopt: a pending step whose deterministic job name the scheduler already knows was
   submitted before a crash: record it, never submit it twice (unless the job runs a script
   outside this experiment's work dir: then it is someone else's);
3. hold: pending steps the preflight found unable to run are blocked with its reason;
   steps it held before (never submitted) whose cause is gone are pending again;
4. block: evaluations of a fine-tuning run that failed, was cancelled or blocked;
5. submit: fine-tuning first, then evaluations whose checkpoint exists (or, where the
   scheduler enforces dependencies, chained on their live fine-tuning job), within capacity;
   a step the scheduler refused for now (a limit: ``deferred``) waits for its ``next_try``.

``retry`` (for `tunegit retry`) and ``cancelled`` (for `tunegit cancel`) are the two
hand-made transitions; both keep every submitted record: a retry is a new attempt
under a new job name (``:a<N>``), the old one goes to ``attempts``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import posixpath
from collections.abc import Mapping

from tunegit.core.expand import Expansion
from tunegit.core.jobplan import FINETUNE_STAGE, job_name
from tunegit.core.observe import Poll, status_from_observation
from tunegit.core.records import Transition
from tunegit.core.stamps import TIME_FORMAT, parse_stamp
from tunegit.core.states import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    HELD_REASONS,
    LIVE_STATES,
    PENDING,
    REASON_CANCELLED,
    REASON_DEPENDENCY_FAILED,
    REASON_JOB_LOST,
    REASON_PREFLIGHT,
    SKIPPED,
    SUBMITTED,
    TERMINAL_STATES,
)
from tunegit.core.status import StatusFile, Step
from tunegit.errors import TunegitError

# How long a live step's job may be unknown to its executor before the step is failed as
# JobLost. Not at once: SLURM's accounting records a finished job asynchronously, and squeue
# drops it MinJobAge (300 s by default) after its end, so for a moment neither may know it
# while slurmdbd catches up. Ten minutes is two MinJobAge windows, far past such a lag, and
# short against the hours or days a lost step would otherwise sit `running`.
JOB_LOST_GRACE_S = 600
# A step the scheduler refused for now (a QOS or partition limit, a busy controller) is tried
# again after the site's submit_retry_s, doubled at each refusal in a row, at most
# SUBMIT_BACKOFF_MAX_S: a cap that stays full costs one sbatch every half hour, not one a cycle.
SUBMIT_BACKOFF_MAX_S = 30 * 60
DEAD = frozenset({FAILED, CANCELLED, BLOCKED})
RETRYABLE = DEAD
# What an attempt's record keeps when a retry replaces it (see ``retry``).
ATTEMPT_KEYS = ("attempt", "requested", "job_id", "job_name", "status", "reason", "message",
                "submitted", "started", "ended", "elapsed_s", "exit_code", "log",
                "submitted_from", "rendered_hash", "last_updated")


class RetryError(TunegitError):
    """A step that cannot be retried (still live, completed, skipped, or unknown)."""

    def __init__(self, message: str, experiment: str):
        super().__init__(message, hint=f"`tunegit status {experiment}` shows every step")


@dataclasses.dataclass(frozen=True)
class Submission:
    run: str
    key: str | None  # None: fine-tuning
    name: str  # deterministic job name
    after: tuple[str, ...] = ()  # job names that must complete first
    attempt: int = 1


@dataclasses.dataclass(frozen=True)
class Decision:
    status: StatusFile
    submit: tuple[Submission, ...]
    transitions: tuple[Transition, ...]


def stage(key: str | None) -> str:
    return FINETUNE_STAGE if key is None else key


def pending_name(experiment: str, run: str, key: str | None, step: Step) -> str:
    """The name a pending step is (or was, before a crash) submitted under: from its attempt."""
    return job_name(experiment, run, stage(key), step.attempt or 1)


def step_name(experiment: str, run: str, key: str | None, step: Step) -> str:
    if step.status == PENDING:
        return pending_name(experiment, run, key, step)
    return step.job_name or pending_name(experiment, run, key, step)


def wanted_names(experiment: str, status: StatusFile) -> dict[str, tuple[str, str | None]]:
    """Job names of pending steps, to look up before submitting (crash safety)."""
    return {pending_name(experiment, run, key, step): (run, key)
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
            cause = step.message if new == FAILED or step.reason in HELD_REASONS else None
            self.transitions.append(Transition(self.experiment, run, key, old.status, new,
                                               step.job_id, step.reason, cause))


def decide(exp: Expansion, status: StatusFile, poll: Poll, *, experiment: str, now: str,
           capacity: int | None, dependencies: bool,
           logs: Mapping[str, str] | None = None, work_dir: str | None = None,
           held: Mapping[tuple[str, str | None], str] | None = None) -> Decision:
    """One pass; ``work_dir`` (the experiment's) is where the scripts of its jobs are;
    ``held`` maps (run, key) of steps the preflight found unable to run to the reason."""
    if not poll.ok:  # unknown this cycle: no state moves, and no name could be looked up
        return Decision(status, (), ())
    p = _Pass(experiment, status, now)
    _observe(p, poll, logs or {})
    _adopt(p, poll, work_dir)
    _hold(p, held or {})
    _block(p, exp)
    submit = _submissions(p, exp, capacity, dependencies)
    return Decision(p.status, tuple(submit), tuple(p.transitions))


def _observe(p: _Pass, poll: Poll, logs: Mapping[str, str]) -> None:
    for run, key, step in p.status.steps():
        if step.status not in LIVE_STATES or not step.job_id:
            continue
        obs = poll.jobs.get(step.job_id)
        if obs is None:
            if step.job_id in poll.lost:
                _missing(p, run, key, step, poll.lost[step.job_id])
            continue
        new, reason, message = status_from_observation(obs, logs.get(step.job_id))
        if new is None:
            continue
        if new == FAILED:
            message = _with_log(message, step)
        changes: dict[str, object] = {"reason": reason or None, "message": message or None,
                                      "started": step.started or obs.start,
                                      "missing_since": None}
        if new in TERMINAL_STATES:  # a running clock would churn the file every cycle
            changes.update(
                ended=obs.end or step.ended,
                elapsed_s=obs.elapsed_s if obs.elapsed_s is not None else step.elapsed_s,
                exit_code=obs.exit_code if obs.exit_code is not None else step.exit_code)
        p.move(run, key, new, **changes)


def _missing(p: _Pass, run: str, key: str | None, step: Step, where: str) -> None:
    """The executor does not know the step's job: noted, then failed after the grace."""
    since = step.missing_since or p.now
    deadline = _later(since, JOB_LOST_GRACE_S)
    if deadline is None:  # a time that does not parse (hand-edited): the grace starts now
        since, deadline = p.now, _later(p.now, JOB_LOST_GRACE_S) or "?"
    if p.now >= deadline:
        p.move(run, key, FAILED, reason=REASON_JOB_LOST, missing_since=since,
               message=_with_log(f"{where}: not found since {since}", step))
    else:
        p.move(run, key, step.status, missing_since=since,
               message=f"{where} (since {since}); failed as JobLost if still missing at "
               f"{deadline}")


def _with_log(message: str, step: Step) -> str:
    """A failure's message ends with where its job's own output is (`tunegit logs` prints it)."""
    return f"{message} (log: {step.log})" if step.log else message


def _later(stamp: str, seconds: float) -> str | None:
    """``stamp`` (UTC, as in the status file) plus ``seconds``; None when it does not parse."""
    moment = parse_stamp(stamp)
    return None if moment is None else (moment + dt.timedelta(seconds=seconds)).strftime(
        TIME_FORMAT)


def _adopt(p: _Pass, poll: Poll, work_dir: str | None) -> None:
    for name, (run, key) in wanted_names(p.experiment, p.status).items():
        job_id = poll.names.get(name)
        if job_id and _ours(poll.origins.get(name), work_dir):
            attempt = p.status.step(run, key).attempt or 1
            p.move(run, key, SUBMITTED, job_id=job_id, job_name=name, attempt=attempt,
                   message="found in the scheduler by its job name (submitted before a restart)")


def _ours(origin: str | None, work_dir: str | None) -> bool:
    """A job runs from this experiment unless its script is known to be elsewhere."""
    if not origin or not work_dir:
        return True
    root = posixpath.normpath(work_dir)
    return posixpath.normpath(origin).startswith(root.rstrip("/") + "/")


def held_before(step: Step) -> bool:
    """Blocked before anything was submitted (preflight, a plan that cannot run here)."""
    return step.status == BLOCKED and step.reason in HELD_REASONS and not step.job_id


def _hold(p: _Pass, held: Mapping[tuple[str, str | None], str]) -> None:
    for run, key, step in p.status.steps():
        message = held.get((run, key))
        if message is not None and (step.status == PENDING or held_before(step)):
            p.move(run, key, BLOCKED, reason=REASON_PREFLIGHT, message=message)
        elif message is None and held_before(step):
            p.move(run, key, PENDING, reason=None, message=None)


def hold_all(status: StatusFile, experiment: str, message: str, reason: str,
             now: str) -> tuple[StatusFile, tuple[Transition, ...]]:
    """Every pending step (and every one held before) blocked with ``reason``: the plan
    cannot be run at all. Live and finished steps are left as they are."""
    p = _Pass(experiment, status, now)
    for run, key, step in status.steps():
        if step.status == PENDING or held_before(step):
            p.move(run, key, BLOCKED, reason=reason, message=message)
    return p.status, tuple(p.transitions)


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
        step = p.status.step(sub.run, sub.key)
        waiting = step.next_try is not None and p.now < step.next_try
        if not waiting and (room is None or len(out) < room):
            out.append(sub)

    for run in exp.finetuned:
        ft = p.status.runs[run.name].finetune
        if ft.status == PENDING:
            add(Submission(run.name, None, pending_name(p.experiment, run.name, None, ft),
                           attempt=ft.attempt or 1))
    for run in exp.runs:
        ft = p.status.runs[run.name].finetune
        ready = ft.status in (COMPLETED, SKIPPED)
        chained = dependencies and (ft.status in LIVE_STATES or
                                    any(s.run == run.name and s.key is None for s in out))
        if not (ready or chained):
            continue
        after = () if ready else (step_name(p.experiment, run.name, None, ft),)
        planned = {e.key for e in exp.evaluations_of(run.name)}
        for key, step in p.status.runs[run.name].evaluations.items():
            if step.status == PENDING and key in planned:  # never one the plan dropped
                add(Submission(run.name, key, pending_name(p.experiment, run.name, key, step),
                               after, step.attempt or 1))
    return out


def deferred(step: Step, now: str, words: str, retry_s: float) -> Step:
    """A pending step the scheduler refused for now: still pending, with the scheduler's
    words, how many times in a row it refused, and when it is tried again: ``retry_s`` after
    the first refusal, twice as long after each further one (at most SUBMIT_BACKOFF_MAX_S)."""
    refusals = (step.refusals or 0) + 1
    delay = min(SUBMIT_BACKOFF_MAX_S, retry_s * 2 ** min(refusals - 1, 16))
    next_try = _later(now, delay) or now
    return step.moved(PENDING, now, refusals=refusals, next_try=next_try,
                      message=f"the scheduler refused it for now ({refusals}x in a row): "
                      f"{words}; tried again from {next_try}")


def retry(status: StatusFile, experiment: str, run: str, key: str | None,
          now: str) -> tuple[StatusFile, tuple[Transition, ...]]:
    """A failed, cancelled or blocked step becomes pending as attempt N+1 (`tunegit retry`).

    The old attempt's record is appended to ``attempts``; nothing submitted is edited in
    place. Retrying a fine-tuning step also re-opens its evaluations that did not run
    (blocked, cancelled or failed), so they chain on the new attempt. A step that never
    had a job just becomes pending.
    """
    if run not in status.runs:
        raise RetryError(f"no run {run!r} in {experiment}; runs: {', '.join(status.runs)}",
                         experiment)
    if key is not None and key not in status.runs[run].evaluations:
        keys = ", ".join(status.runs[run].evaluations) or "none"
        raise RetryError(f"run {run} has no evaluation {key!r}; evaluations: {keys}", experiment)
    p = _Pass(experiment, status, now)
    step = status.step(run, key)
    if step.status not in RETRYABLE:
        raise RetryError(f"{run} / {key or 'fine-tuning'} is {step.status}; only failed, "
                         "cancelled or blocked steps can be retried", experiment)
    _reopen(p, run, key)
    if key is None:
        for eval_key, ev in status.runs[run].evaluations.items():
            if ev.status in RETRYABLE:
                _reopen(p, run, eval_key)
    return p.status, tuple(p.transitions)


def _reopen(p: _Pass, run: str, key: str | None) -> None:
    step = p.status.step(run, key)
    if not (step.job_id or step.job_name):  # never submitted: no attempt to keep
        p.move(run, key, PENDING, reason=None, message=None)
        return
    record = {k: getattr(step, k) for k in ATTEMPT_KEYS if getattr(step, k) is not None}
    record["attempt"] = step.attempt or 1
    attempt = record["attempt"] + 1
    fresh = Step(status=step.status, output=step.output, last_updated=step.last_updated,
                 note=step.note, attempt=attempt,
                 job_name=job_name(p.experiment, run, stage(key), attempt),
                 attempts=(*step.attempts, record),
                 message=f"retry: attempt {attempt} (attempt {attempt - 1} {step.status})")
    p.status = p.status.with_step(run, key, fresh)
    p.move(run, key, PENDING)


def cancelled(status: StatusFile, experiment: str, now: str, run: str | None = None,
              ) -> tuple[StatusFile, tuple[Transition, ...], list[str]]:
    """Live and pending steps (of one run, or all) -> cancelled/CancelledByUser.

    Returns the new status, its transitions, and the job ids to cancel (the caller asks the
    executor). Pending steps are cancelled too, so that nothing new is submitted for them.
    """
    p = _Pass(experiment, status, now)
    ids = []
    for run_name, key, step in status.steps():
        if run is not None and run_name != run:
            continue
        if step.status in LIVE_STATES or step.status == PENDING:
            if step.job_id and step.status in LIVE_STATES:
                ids.append(step.job_id)
            p.move(run_name, key, CANCELLED, reason=REASON_CANCELLED,
                   message="cancelled by `tunegit cancel`")
    return p.status, tuple(p.transitions), ids
