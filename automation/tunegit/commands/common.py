"""Helpers shared by commands: finding the workspace, printing problems."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from tunegit.edges.workspace import Workspace
from tunegit.errors import Problem


def workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.find(Path(args.root) if getattr(args, "root", None) else None)


def warn(problems: Iterable[Problem]) -> None:
    for p in problems:
        print(f"warning: {p.format()}", file=sys.stderr)


def out(text: str = "") -> None:
    print(text, flush=True)
