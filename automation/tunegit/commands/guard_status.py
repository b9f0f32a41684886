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
from tunegit.core import status as status_mod
from tunegit.core.states import REASON_BASE_MODEL, SKIPPED
from tunegit.core.status import BASE_NOTE, Step
from tunegit.edges.gitstore import COMMITTER_ENV, is_own_message
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import Problem, TunegitError

FRESH = (Step(), Step(SKIPPED, reason=REASON_BASE_MODEL, note=BASE_NOTE))
HINT = ("runs_status.yaml is written by tunegit's watcher only; undo the edit with "
        "`git checkout HEAD -- {path}` (then `tunegit check --write` if the plan gained runs); "
        "for a new attempt of a failed step, `tunegit retry EXP RUN [EVAL]` asks for it in "
        "retry.yaml, through a pull request; to change a run, give it a new run name")


# --- pure ------------------------------------------------------------------------------------

def hand_edits(old_text: str | None, new_text: str | None, path: str) -> list[Problem]:
    """What a human change from ``old_text`` to ``new_text`` did that only tunegit may do."""
    hint = HINT.format(path=path)
    if new_text is None:
        return [] if old_text is None else [Problem(path, "deleted by hand", hint=hint)]
    try:
        new = status_mod.parse(new_text)
        old = status_mod.parse(old_text) if old_text is not None else None
    except (status_mod.StatusFormatError, ValueError) as exc:
        return [Problem(path, f"unreadable: {exc}", hint=hint)]
    new_steps = {(run, key): step for run, key, step in new.steps()}
    old_steps = {(run, key): step for run, key, step in old.steps()} if old else {}
    problems = []
    if old is not None and (old.run_group, old.plan_commit) != (new.run_group, new.plan_commit):
        problems.append(Problem(path, "run_group or plan_commit changed by hand", hint=hint))
    for (run, key), step in old_steps.items():
        label = f"runs.{run}.{'finetune' if key is None else 'evaluations.' + key}"
        if (run, key) not in new_steps:
            problems.append(Problem(path, "record removed by hand", field=label, hint=hint))
        elif new_steps[(run, key)] != step:
            now = new_steps[(run, key)]
            problems.append(Problem(path, f"record edited by hand (status {step.status} -> "
                                    f"{now.status}, job {step.job_id} -> {now.job_id})",
                                    field=label, hint=hint))
    for (run, key), step in new_steps.items():
        if (run, key) not in old_steps and step not in FRESH:
            label = f"runs.{run}.{'finetune' if key is None else 'evaluations.' + key}"
            problems.append(Problem(path, f"new record is not pending (status {step.status})",
                                    field=label, hint=hint))
    return problems


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
