"""`tunegit reconcile --once`: one watcher cycle (cron, scrontab, CI-less clusters)."""

from __future__ import annotations

import argparse
import sys

from tunegit.commands.common import out, workspace
from tunegit.core.records import SUBMIT_DEFERRED
from tunegit.errors import TunegitError
from tunegit.loop.cycle import WatchConfig, reconcile_once


def config(args: argparse.Namespace) -> WatchConfig:
    if args.lease_minutes < 0:
        raise TunegitError(f"--lease-minutes {args.lease_minutes:g}: must be 0 or more",
                           hint="0 turns the watcher lease off")
    return WatchConfig(workspace(args).root, remote=args.remote, branch=args.branch,
                       push_attempts=args.push_attempts, lease_s=args.lease_minutes * 60,
                       sites=tuple(args.sites))


def main(args: argparse.Namespace) -> int:
    report = reconcile_once(config(args))
    out(report.summary())
    # A submission refused for now (a limit) is waiting, not failing: the next cycle retries it.
    waiting = [e for e in report.errors if e.kind == SUBMIT_DEFERRED]
    failing = [e for e in report.errors if e.kind != SUBMIT_DEFERRED]
    for error in waiting:
        print(f"waiting: {error}", file=sys.stderr)
    for error in failing:
        print(f"error: {error}", file=sys.stderr)
    failed_push = report.push is not None and not report.push.pushed
    return 1 if failing or failed_push else 0
