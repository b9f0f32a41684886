"""Executors: where jobs run. One module per backend, registered by the site's `executor:`.

A backend module provides ``create(site, paths)`` (its Executor), ``poll_backoff(site)`` (how
often to poll, and how to back off) and ``wake_files(site, paths)`` (what a job's end writes,
for the watcher): see ``Backend`` in ``executors.base``. Adding an executor is one module and
one line in ``EXECUTORS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tunegit.executors.base import Backend, Executor, SitePaths
from tunegit.registry import Registry
from tunegit.spec.site import Site

if TYPE_CHECKING:  # mypy checks that each backend module satisfies the Backend Protocol
    from tunegit.executors import local, slurm

    _LOCAL_CHECK: Backend = local
    _SLURM_CHECK: Backend = slurm

__all__ = ["EXECUTORS", "ExecutorFactory", "backend", "executor_factory"]

EXECUTORS: Registry[Backend] = Registry({
    "local": "tunegit.executors.local",
    "slurm": "tunegit.executors.slurm",
}, what="executor")

ExecutorFactory = Callable[[Site], Executor]


def backend(name: str) -> Backend:
    """The executor module registered as ``name`` (an unknown name lists the registered)."""
    return EXECUTORS.get_backend(name)


def executor_factory(paths: SitePaths) -> ExecutorFactory:
    """Site -> its executor, one per executor and output_dir (``paths``: the workspace)."""
    cache: dict[tuple[str, str], Executor] = {}

    def make(site: Site) -> Executor:
        key = (site.executor, site.output_dir)
        if key not in cache:
            cache[key] = backend(site.executor).create(site, paths)
        return cache[key]

    return make
