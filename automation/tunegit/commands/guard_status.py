"""`tunegit guard-status`: refuse hand edits to runs_status.yaml (pre-commit hook and CI).

runs_status.yaml is tunegit's audit record. A human commit may only do what
`tunegit check --write` does: create the file, or add new `pending` records for
runs and evaluations the plan gained. Anything else (a changed, removed or
invented record) is refused, unless the commit is tunegit's own: its committer
sets TUNEGIT_COMMITTER=1 (pre-commit), or its message carries the
`Tunegit-Experiment:` trailer (CI, `--base REV`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tunegit.commands.common import workspace
from tunegit.core.status_edits import hand_edits
from tunegit.edges.gitstore import COMMITTER_ENV, is_own_message
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import Problem, TunegitError

__all__ = ["hand_edits", "main", "range_problems", "staged_problems"]


def is_status_path(path: str) -> bool:
    return Path(path).name == STATUS_FILE


# --- I/O -------------------------------------------------------------------------------------

def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=False)
    return proc.stdout if proc.returncode == 0 else None


def staged_problems(root: Path, files: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    for f in filter(is_status_path, files):
        rel = os.path.relpath(Path(f).resolve(), root.resolve())
        problems += hand_edits(_git(root, "show", f"HEAD:{rel}"), _git(root, "show", f":{rel}"),
                               rel)
    return problems


def range_problems(root: Path, base: str) -> list[Problem]:
    """Every human, non-merge commit in base..HEAD that touched a runs_status.yaml."""
    if _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}") is None:
        raise TunegitError(f"unknown revision {base!r}",
                           hint="in CI fetch the full history (actions/checkout `fetch-depth: 0`)")
    shas = (_git(root, "rev-list", "--no-merges", "--reverse", f"{base}..HEAD") or "").split()
    problems: list[Problem] = []
    for sha in shas:
        if is_own_message(_git(root, "log", "-1", "--format=%B", sha) or ""):
            continue
        names = _git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", sha)
        for rel in filter(is_status_path, (names or "").split()):
            found = hand_edits(_git(root, "show", f"{sha}^:{rel}"), _git(root, "show",
                               f"{sha}:{rel}"), rel)
            problems += [Problem(p.file, f"{p.message} in commit {sha[:10]}", p.line, p.col,
                                 p.field, p.hint) for p in found]
    return problems


def main(args: argparse.Namespace) -> int:
    root = workspace(args).root
    if args.base:
        problems = range_problems(root, args.base)
    elif os.environ.get(COMMITTER_ENV) == "1":
        return 0
    else:
        problems = staged_problems(root, args.files)
    for p in problems:
        print(p.format(), file=sys.stderr)
    return 1 if problems else 0
