"""`tunegit results EXP`: scores per run x task x epoch, written next to the plan."""

from __future__ import annotations

import argparse

from tunegit.commands.common import out, workspace
from tunegit.core import results
from tunegit.core.expand import expand
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import TunegitError
from tunegit.files import read_status, write_if_changed
from tunegit.render.plots import plot_png


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    loaded = ws.load_plan(ws.resolve_experiment(args.experiment))
    exp = expand(loaded.plan)
    directory = loaded.directory
    status = read_status(directory / STATUS_FILE)
    if status is None:
        raise TunegitError(
            f"no {STATUS_FILE} for {loaded.plan.name}",
            hint=f"run `tunegit check --write experiments/{loaded.plan.name}` first",
        )
    scores = results.collect(exp, status)
    md = results.markdown(scores, loaded.plan.name)
    write_if_changed(directory / "results.md", md)
    write_if_changed(directory / "results.csv", results.to_csv(scores))
    png = directory / "results.png"
    plotted = plot_png(str(png), exp, scores, loaded.plan.name)
    print(md if args.format == "markdown" else results.to_csv(scores), end="")
    rel = ws.rel(directory)
    out(
        f"\nwrote {rel}/results.md, {rel}/results.csv"
        + (f", {rel}/results.png" if plotted else " (no plot: matplotlib missing)")
    )
    return 0
