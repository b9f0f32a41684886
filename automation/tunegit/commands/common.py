"""Helpers shared by commands: finding the workspace, printing problems."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tunegit.edges.scaffold import IDENTICAL, FileAction
from tunegit.edges.workspace import Workspace
from tunegit.errors import Problem


def workspace(args: argparse.Namespace) -> Workspace:
    return Workspace.find(Path(args.root) if getattr(args, "root", None) else None)


def warn(problems: Iterable[Problem]) -> None:
    for p in problems:
        print(f"warning: {p.format()}", file=sys.stderr)


def out(text: str = "") -> None:
    print(text, flush=True)


def report_writes(actions: Iterable[FileAction], *, show_identical: bool) -> str:
    """Print one line per file written or refused (identical ones too if asked); return the
    summary, e.g. ``2 create, 5 identical``."""
    counts: Counter[str] = Counter()
    for act in actions:
        counts[act.action] += 1
        if act.action != IDENTICAL or show_identical:
            out(f"{act.action:>9}  {act.path}" + (f"  ({act.detail})" if act.detail else ""))
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
