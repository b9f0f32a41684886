"""`tunegit history EXP[/RUN]`: who planned it, when it was submitted, ran and finished."""

from __future__ import annotations

import argparse
import sys

from tunegit.commands.common import workspace
from tunegit.edges.history import history


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(history(workspace(args).root, args.target))
    return 0
