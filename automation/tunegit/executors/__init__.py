"""Executors: where jobs run. One module per backend, chosen by the site's `executor:`."""

from __future__ import annotations

from collections.abc import Callable

from tunegit.executors.base import Executor
from tunegit.site import Site
from tunegit.workspace import Workspace

JOBS_DIR = ".tunegit-jobs"


def executor_factory(ws: Workspace) -> Callable[[Site], Executor]:
    """Site -> its executor (the local one keeps job state under the site's output_dir)."""
    cache: dict[str, Executor] = {}

    def make(site: Site) -> Executor:
        key = f"{site.executor}:{site.output_dir}"
        if key not in cache:
            if site.executor == "slurm":
                from tunegit.executors.slurm import SlurmExecutor

                cache[key] = SlurmExecutor()
            else:
                from tunegit.executors.local import LocalExecutor

                cache[key] = LocalExecutor(ws.site_dir(site.output_dir) / JOBS_DIR)
        return cache[key]

    return make
