"""`tunegit diff BASE [HEAD]`: the semantic plan diff between two revisions (the PR comment)."""

from __future__ import annotations

import argparse
import sys

from tunegit.commands.common import workspace
from tunegit.edges.plandiff import as_json, markdown, plan_diff


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    diff = plan_diff(ws.root, args.base, args.head)
    text = as_json(diff) if args.format == "json" else markdown(diff)
    sys.stdout.write(text)
    for problem in diff.problems:
        print(problem.format(), file=sys.stderr)
    return 1 if diff.problems else 0
