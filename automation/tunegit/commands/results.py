"""`tunegit results EXP`: scores per run x task x epoch x scorer with n, 95% intervals and
the paired difference from the base control, and the loss curves, written next to the plan
(results.md, results.csv, results.png, loss.png)."""

from __future__ import annotations

import argparse
import sys

from tunegit.commands.common import out, workspace
from tunegit.core.status import StatusFile
from tunegit.edges import results_files as rf
from tunegit.edges.workspace import STATUS_FILE, LoadedPlan, Workspace
from tunegit.errors import TunegitError
from tunegit.files import read_status


def load(ws: Workspace, experiment: str) -> tuple[LoadedPlan, StatusFile, rf.Gathered]:
    """The plan, its status and what its runs left here (shared with `tunegit report`)."""
    loaded = ws.load_plan(ws.resolve_experiment(experiment))
    status = read_status(loaded.directory / STATUS_FILE)
    if status is None:
        raise TunegitError(
            f"no {STATUS_FILE} for {loaded.plan.name}",
            hint=f"run `tunegit check --write experiments/{loaded.plan.name}` first",
        )
    gathered = rf.gather(loaded.plan, status)
    for problem in gathered.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return loaded, status, gathered


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    loaded, _, gathered = load(ws, args.experiment)
    files = rf.render_files(loaded.plan, gathered)
    rf.write_files(loaded.directory, files)
    print(files[rf.RESULTS_MD if args.format == "markdown" else rf.RESULTS_CSV], end="")
    rel = ws.rel(loaded.directory)
    missing = [name for name in (rf.RESULTS_PNG, rf.LOSS_PNG) if name not in files]
    why = {rf.RESULTS_PNG: "matplotlib missing",
           rf.LOSS_PNG: "no training log here" if not gathered.curves else "matplotlib missing"}
    out("\nwrote " + ", ".join(f"{rel}/{name}" for name in files)
        + "".join(f" (no {name}: {why[name]})" for name in missing))
    return 0
