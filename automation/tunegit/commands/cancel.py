"""`tunegit cancel EXP [RUN]`: cancel live jobs and record it (cancelled, CancelledByUser).

Submitted and running jobs are cancelled through the site's executor (one scancel on
SLURM); pending steps are marked cancelled too, so no cycle submits them afterwards.
`tunegit retry` gives any of them a new attempt.
"""

from __future__ import annotations

import argparse

from tunegit.commands.common import out, workspace
from tunegit.commands.run import describe
from tunegit.core.reconcile import cancelled
from tunegit.core.status import dump
from tunegit.edges.analysis import analyse
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import TunegitError
from tunegit.executors import executor_factory
from tunegit.files import read_status, utc_now, write_if_changed


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    plan_path = ws.resolve_experiment(args.experiment)
    name = plan_path.parent.name
    path = ws.experiment_dir(name) / STATUS_FILE
    status = read_status(path)
    if status is None:
        raise TunegitError(f"experiments/{name}/{STATUS_FILE} does not exist: nothing to cancel",
                           hint=f"`tunegit status {name}` shows where things stand")
    if args.run is not None and args.run not in status.runs:
        raise TunegitError(f"no run {args.run!r} in {name}",
                           hint="runs: " + ", ".join(status.runs))
    status, transitions, job_ids = cancelled(status, name, utc_now(), args.run)
    if job_ids:  # a SchedulerError stops here: nothing is recorded, the jobs may still run
        site = analyse(ws, plan_path, args.site).site
        executor_factory(ws)(site).cancel(job_ids)
    write_if_changed(path, dump(status))
    for t in transitions:
        out(describe(t))
    out(f"cancelled {len(job_ids)} job(s), {len(transitions)} step(s)"
        if transitions else "nothing live or pending to cancel")
    return 0
