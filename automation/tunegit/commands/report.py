"""`tunegit report EXP`: one self-contained HTML page, experiments/EXP/report.html.

The plan, estimates against what the runs measured, every step's status, the results
with their intervals and the plots (the same figures `tunegit results` writes). A run's
estimate is the one recorded when it was submitted; a run not submitted yet gets what the
plan estimates now, when the plan checks on this machine (else none is shown).
"""

from __future__ import annotations

import argparse

from tunegit.commands.common import out, workspace
from tunegit.commands.results import load
from tunegit.core.estimate import PlanEstimate
from tunegit.core.status import StatusFile
from tunegit.edges import results_files as rf
from tunegit.edges.analysis import analyse
from tunegit.edges.workspace import LoadedPlan, Workspace
from tunegit.errors import TunegitError
from tunegit.files import write_if_changed
from tunegit.render.report import Image, Planned, report_html

CAPTIONS = {
    rf.RESULTS_PNG: "Score per run with its 95% interval, grouped by the plan's factors; "
                    "base-model controls in grey.",
    rf.LOSS_PNG: "Training loss per step (dotted lines: epoch boundaries) and per epoch, "
                 "with validation loss where the plan asks for it.",
}


def planned(ws: Workspace, loaded: LoadedPlan, status: StatusFile) -> dict[str, Planned]:
    """Recorded estimates first; the plan's current estimate for the rest, where it checks."""
    current: PlanEstimate | None = None
    try:
        current = analyse(ws, loaded.path).estimate
    except TunegitError:
        current = None
    found: dict[str, Planned] = {}
    for est in current.runs if current else ():
        found[est.name] = Planned(est.train_minutes.value, est.eval_minutes.value,
                                 f"{est.source} (plan now)")
    for run, record in status.runs.items():
        recorded = record.finetune.estimate or {}
        minutes = recorded.get("train_minutes")
        if isinstance(minutes, int | float):
            now = found.get(run)
            found[run] = Planned(float(minutes), now.eval_minutes if now else None,
                                f"{recorded.get('source') or 'estimate'} (at submission)")
    return found


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    loaded, status, gathered = load(ws, args.experiment)
    files = rf.render_files(loaded.plan, gathered)
    images = [Image(name, CAPTIONS[name], content) for name, content in files.items()
              if isinstance(content, bytes)]
    html = report_html(loaded.plan, ws.rel(loaded.path), gathered.expansion, status,
                       gathered.cells, planned(ws, loaded, status), images, gathered.problems)
    path = loaded.directory / rf.REPORT_FILE
    write_if_changed(path, html)
    out(f"wrote {ws.rel(path)}")
    return 0
