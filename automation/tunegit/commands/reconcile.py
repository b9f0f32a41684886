"""`tunegit reconcile --once`: one watcher cycle (cron, scrontab, CI-less clusters)."""

from __future__ import annotations

import argparse
import sys

from tunegit.commands.common import out, workspace
from tunegit.loop.cycle import WatchConfig, reconcile_once


def config(args: argparse.Namespace) -> WatchConfig:
    return WatchConfig(workspace(args).root, remote=args.remote, branch=args.branch,
                       push_attempts=args.push_attempts, sites=tuple(args.sites))


def main(args: argparse.Namespace) -> int:
    report = reconcile_once(config(args))
    out(report.summary())
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    failed_push = report.push is not None and not report.push.pushed
    return 1 if report.errors or failed_push else 0
