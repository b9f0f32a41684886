"""`tunegit reconcile --once`: one watcher cycle (cron, scrontab, CI-less clusters)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tunegit.commands.common import out, workspace
from tunegit.watcher import WatchConfig, reconcile_once


def add_watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--branch", default="main",
                   help="the protected branch to follow (default: main)")
    p.add_argument("--remote", default="origin",
                   help="the remote to fetch and push (default: origin)")
    p.add_argument("--push-attempts", type=int, default=5, metavar="N",
                   help="push tries per cycle, with back-off, before keeping the commit local")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile", help="one watcher cycle: pull the protected branch, run, commit status, push",
        description="Fetch and fast-forward the protected branch, reconcile experiments that "
        "changed or have live jobs, commit runs_status.yaml changes in one commit and push. "
        "Meant for cron or scrontab: a second copy running on the same checkout exits at once.")
    p.add_argument("--once", action="store_true", help="one cycle, then exit (the only mode)")
    add_watch_args(p)


def config(args: argparse.Namespace) -> WatchConfig:
    return WatchConfig(workspace(args).root, remote=args.remote, branch=args.branch,
                       push_attempts=args.push_attempts)


def main(args: argparse.Namespace) -> int:
    report = reconcile_once(config(args))
    out(report.summary())
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    failed_push = report.push is not None and not report.push.pushed
    return 1 if report.errors or failed_push else 0
