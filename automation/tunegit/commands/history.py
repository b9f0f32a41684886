"""`tunegit history EXP[/RUN]`: who planned it, when it was submitted, ran and finished."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tunegit.commands.common import workspace
from tunegit.history import history


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "history", help="timeline of an experiment or run from git log (the audit trail)",
        description="Read git log of experiments/EXP/runs_status.yaml and experiment.yaml: who "
        "planned each run in which commit, and every state the watcher recorded, with job ids.")
    p.add_argument("target", metavar="EXP[/RUN]", help="an experiment, or one of its runs")


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(history(workspace(args).root, args.target))
    return 0
