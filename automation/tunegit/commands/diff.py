"""`tunegit diff BASE [HEAD]`: the semantic plan diff between two revisions (the PR comment).

Refusals (changes to submitted runs) are in the diff; stderr says only how many, so a
terminal showing both prints each one once."""

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
    if diff.problems:  # each is listed once, in the diff itself (the PR comment)
        print(f"tunegit diff: {len(diff.problems)} change(s) to submitted runs refused "
              "(listed in the diff)", file=sys.stderr)
    return 1 if diff.problems else 0
