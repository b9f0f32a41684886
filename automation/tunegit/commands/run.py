"""`tunegit run EXP [--site S]`: scaffold + submit + wait, with progress, on any site.

Each cycle holds the checkout's lock, the one the watcher's cycles take (.git/tunegit.lock;
.tunegit/ outside git): two `tunegit run`s, or a run and a watcher, in one checkout never
decide on the same status at once, so nothing is submitted twice. One that finds the lock
held says so and waits for it.

Polling is polite: one scheduler query per cycle, at the interval the site's executor
asks for (or ``--poll``), backing off while the scheduler does not answer. Such a cycle
changes nothing and is never a failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence

from tunegit.commands.common import out, workspace
from tunegit.core.reconcile import held_before
from tunegit.core.records import SCHEDULER_UNANSWERED, SUBMIT_DEFERRED, CycleError, Transition
from tunegit.core.states import COMPLETED, SKIPPED, TERMINAL_STATES
from tunegit.edges.analysis import analyse
from tunegit.edges.gitinfo import git_dir, head_commit
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.errors import TunegitError
from tunegit.executors import backend, executor_factory
from tunegit.executors.base import Backoff
from tunegit.files import read_status, utc_now
from tunegit.loop.cycle import LOCK_FILE, locked
from tunegit.loop.engine import cycle

IDLE_POLL_S = 30.0  # the plan is invalid: look again now and then, without a scheduler


def describe(t: Transition) -> str:
    what = t.run + (f" / {t.key}" if t.key else " fine-tuning")
    extra = f" (job {t.job_id})" if t.job_id and t.new == "submitted" else ""
    quiet = ("submitted", "running", "completed")
    reason = f": {t.reason}" if t.reason and t.new not in quiet else ""
    cause = f": {t.message}" if t.message else ""  # a failure's cause and log
    return f"{what}: {t.old} -> {t.new}{extra}{reason}{cause}"


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    plan_path = ws.resolve_experiment(args.experiment)
    name = plan_path.parent.name
    make = executor_factory(ws)
    start = time.monotonic()
    last_summary = ""
    backoff = _backoff(ws, name, args.site, args.poll)
    failures = 0  # consecutive cycles the scheduler did not answer
    lock_dir = git_dir(ws.root) or ws.root / ".tunegit"
    while True:
        with locked(lock_dir, on_wait=lambda: out(
                f"waiting: another `tunegit run` or the watcher is reconciling in this "
                f"checkout (it holds {lock_dir / LOCK_FILE})")):
            result = cycle(ws, [name], now=utc_now(), plan_commit=head_commit(ws.root),
                           executor_for=make, site_override=args.site)
        for err in result.errors:
            print(f"{'waiting' if err.kind == SUBMIT_DEFERRED else 'error'}: {err}",
                  file=sys.stderr)
        unanswered = scheduler_unanswered(result.errors)
        failures = failures + 1 if unanswered else 0
        stuck = [e for e in result.errors if e.kind != SUBMIT_DEFERRED]
        if stuck and not unanswered and not result.transitions and not result.live:
            return 1
        elapsed = time.monotonic() - start
        for t in result.transitions:
            out(f"[{elapsed:6.0f}s] {describe(t)}")
        summary = _summary(ws, name)
        if summary != last_summary:
            out(f"[{elapsed:6.0f}s] {summary}")
            last_summary = summary
        if result.live == 0 and result.pending == 0 and not unanswered:
            return _finish(ws, name)
        if args.no_wait:
            out("submitted what was ready; `tunegit run` again (or the watcher) continues")
            return 0
        delay = backoff.delay(failures)
        if unanswered:
            out(f"[{elapsed:6.0f}s] the scheduler did not answer; next try in {delay:.0f} s")
        try:
            time.sleep(delay)
        except KeyboardInterrupt:
            out("\nstopped watching; submitted jobs keep running. "
                f"`tunegit run {name}` resumes, `tunegit status {name}` shows where they are")
            return 130


def scheduler_unanswered(errors: Sequence[CycleError]) -> bool:
    return any(error.kind == SCHEDULER_UNANSWERED for error in errors)


def _backoff(ws: Workspace, name: str, override: str | None, poll: float | None) -> Backoff:
    """The site's executor's back-off (its interval replaced by --poll): doubled per
    unanswered cycle."""
    try:
        site = analyse(ws, ws.experiment_dir(name) / PLAN_FILE, override).site
        backoff = backend(site.executor).poll_backoff(site)
    except TunegitError:  # the cycle reports the plan's errors itself
        backoff = Backoff(base_s=IDLE_POLL_S, jitter=0.0)
    if poll is not None:
        backoff = dataclasses.replace(backoff, base_s=poll, max_s=max(backoff.max_s, poll))
    return dataclasses.replace(backoff, seed=os.getpid())


def _summary(ws: Workspace, name: str) -> str:
    status = read_status(ws.experiment_dir(name) / STATUS_FILE)
    if status is None:
        return ""
    counts = status.counts()
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def _finish(ws: Workspace, name: str) -> int:
    status = read_status(ws.experiment_dir(name) / STATUS_FILE)
    assert status is not None
    bad = [(r, k, s) for r, k, s in status.steps()
           if s.status in TERMINAL_STATES and s.status not in (COMPLETED, SKIPPED)]
    out(f"done: {_summary(ws, name)}")
    for run, key, step in bad:
        where = f" (log: {step.log})" if step.log else ""
        why = f": {step.message}" if held_before(step) else ""  # names the fix
        out(f"  {run} / {key or 'fine-tuning'}: {step.status}"
            f"{': ' + step.reason if step.reason else ''}{why}{where}")
    out(f"status: experiments/{name}/{STATUS_FILE}; scores: `tunegit results {name}`")
    return 1 if bad else 0
