"""Executors: where jobs run. One module per backend, chosen by the site's `executor:`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from tunegit.executors.base import Executor
from tunegit.spec.site import Site
from tunegit.edges.workspace import Workspace

JOBS_DIR = ".tunegit-jobs"
SLURM_COMMAND_TIMEOUT_S = 60.0


def slurm_runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a SLURM command with the job environment: sbatch exports it to the job
    (--export=ALL), so jobs find this Python's `tune` and `inspect` like local jobs do."""
    from tunegit.executors.local import job_environment

    return subprocess.run(list(argv), capture_output=True, text=True,
                          timeout=SLURM_COMMAND_TIMEOUT_S, env=job_environment())


def executor_factory(ws: Workspace) -> Callable[[Site], Executor]:
    """Site -> its executor (the local one keeps job state under the site's output_dir)."""
    cache: dict[str, Executor] = {}

    def make(site: Site) -> Executor:
        key = f"{site.executor}:{site.output_dir}"
        if key not in cache:
            if site.executor == "slurm":
                from tunegit.executors.slurm import SlurmExecutor

                cache[key] = SlurmExecutor(slurm_runner)
            else:
                from tunegit.executors.local import LocalExecutor

                cache[key] = LocalExecutor(ws.site_dir(site.output_dir) / JOBS_DIR)
        return cache[key]

    return make
