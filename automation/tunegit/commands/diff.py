"""`tunegit diff BASE [HEAD]`: the semantic plan diff between two revisions (the PR comment)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tunegit.commands.common import workspace
from tunegit.plandiff import as_json, markdown, plan_diff


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "diff", help="plan diff between two revisions: runs, evaluations, GPU-hours (PR comment)",
        description="Compare the plans of two git revisions: experiments and runs added, removed "
        "or changed, evaluations, and the GPU-hour, time and disk delta. Prints nothing when no "
        "plan changed. Fails when a run that was already submitted changed.")
    p.add_argument("base", help="base revision, e.g. origin/main or the PR's base sha")
    p.add_argument("head", nargs="?", help="head revision (default: the working tree)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown")


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    diff = plan_diff(ws.root, args.base, args.head)
    text = as_json(diff) if args.format == "json" else markdown(diff)
    sys.stdout.write(text)
    for problem in diff.problems:
        print(problem.format(), file=sys.stderr)
    return 1 if diff.problems else 0
