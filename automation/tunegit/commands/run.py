"""`tunegit run EXP [--site S]`: scaffold + submit + wait, with progress, on any site."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from tunegit.commands.common import out, workspace
from tunegit.engine import cycle
from tunegit.executors import executor_factory
from tunegit.gitinfo import head_commit
from tunegit.records import Transition
from tunegit.states import TERMINAL_STATES
from tunegit.status import read
from tunegit.workspace import STATUS_FILE, Workspace

LOCAL_POLL_S = 2.0


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(t: Transition) -> str:
    what = t.run + (f" / {t.key}" if t.key else " fine-tuning")
    extra = f" (job {t.job_id})" if t.job_id and t.new == "submitted" else ""
    reason = f": {t.reason}" if t.reason and t.new not in ("submitted", "running", "completed") else ""
    return f"{what}: {t.old} -> {t.new}{extra}{reason}"


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    plan_path = ws.resolve_experiment(args.experiment)
    name = plan_path.parent.name
    make = executor_factory(ws)
    start = time.monotonic()
    last_summary = ""
    poll_s = args.poll
    while True:
        result = cycle(ws, [name], now=now_utc(), plan_commit=head_commit(ws.root),
                       executor_for=make, site_override=args.site)
        for err in result.errors:
            print(f"error: {err}", file=sys.stderr)
        if result.errors and not result.transitions and not result.live:
            return 1
        elapsed = time.monotonic() - start
        for t in result.transitions:
            out(f"[{elapsed:6.0f}s] {describe(t)}")
        summary = _summary(ws, name)
        if summary != last_summary:
            out(f"[{elapsed:6.0f}s] {summary}")
            last_summary = summary
        if result.live == 0 and result.pending == 0:
            return _finish(ws, name)
        if args.no_wait:
            out("submitted what was ready; `tunegit run` again (or the watcher) continues")
            return 0
        if poll_s is None:
            poll_s = LOCAL_POLL_S if result.live and _is_local(ws, name, args.site) else 30.0
        try:
            time.sleep(poll_s)
        except KeyboardInterrupt:
            out("\nstopped watching; submitted jobs keep running. "
                f"`tunegit run {name}` resumes, `tunegit status {name}` shows where they are")
            return 130


def _is_local(ws: Workspace, name: str, override: str | None) -> bool:
    from tunegit.analysis import analyse

    try:
        return analyse(ws, ws.experiment_dir(name) / "experiment.yaml", override).site.executor == "local"
    except Exception:  # noqa: BLE001 - only picks a polling interval
        return False


def _summary(ws: Workspace, name: str) -> str:
    status = read(ws.experiment_dir(name) / STATUS_FILE)
    if status is None:
        return ""
    counts = status.counts()
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def _finish(ws: Workspace, name: str) -> int:
    status = read(ws.experiment_dir(name) / STATUS_FILE)
    assert status is not None
    bad = [(r, k, s) for r, k, s in status.steps()
           if s.status in TERMINAL_STATES and s.status not in ("completed", "skipped")]
    out(f"done: {_summary(ws, name)}")
    for run, key, step in bad:
        where = f" (log: {step.log})" if step.log else ""
        out(f"  {run} / {key or 'fine-tuning'}: {step.status}"
            f"{': ' + step.reason if step.reason else ''}{where}")
    out(f"status: experiments/{name}/{STATUS_FILE}; scores: `tunegit results {name}`")
    return 1 if bad else 0
