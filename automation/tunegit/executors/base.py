"""The executor contract shared by the local and SLURM backends.

The reconcile loop hands an executor ``JobPlan``s (tunegit.core.jobplan) to submit and
asks it, once a cycle, what it sees. An executor never decides what should run; it only
runs what it is given and reports truthfully, with ``JOB_UNKNOWN`` (or a missing id)
for "could not tell this cycle", never a guessed failure.

An executor module (a ``Backend``, registered in ``tunegit.executors``) also says what the
loop needs to know of it: how often to poll and how to back off, and which files a job's
end writes (so the watcher wakes on them). Nothing outside it branches on its name.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tunegit.core.jobplan import JobPlan, Resources
from tunegit.core.observe import JobObservation, Poll
from tunegit.errors import TunegitError
from tunegit.spec.site import Site

__all__ = ["Backend", "Backoff", "Executor", "JobObservation", "JobPlan", "Poll", "Resources",
           "SchedulerError", "SitePaths", "SubmitError", "WakeFile", "job_environment"]


class Executor(Protocol):
    """A place that runs jobs."""

    name: str
    supports_dependencies: bool  # True: ``after`` is enforced by the scheduler itself

    def submit(self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Submit jobs; return job name -> job id for each submitted. Raises SubmitError.

        ``known`` maps names of jobs submitted earlier to their ids, for ``after``.
        """
        ...

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        """Observe live jobs by id, and look names up (at most one call per cycle)."""
        ...

    def cancel(self, job_ids: Collection[str]) -> None:
        """Cancel jobs; unknown ids are ignored. Raises SchedulerError when it cannot tell
        whether they were cancelled."""
        ...


class SubmitError(TunegitError):
    """The scheduler refused a job (bad partition, over QOS, ...): not retried blindly.

    ``submitted`` holds the jobs of the same call that did go in before the refusal.
    ``transient``: refused for now (a limit on jobs queued, a busy controller), so the same
    job is worth submitting again later; otherwise it never will be accepted as it is."""

    def __init__(self, job_name: str, message: str, submitted: Mapping[str, str] | None = None,
                 *, transient: bool = False):
        self.job_name = job_name
        self.submitted = dict(submitted or {})
        self.transient = transient
        self.words = message
        super().__init__(f"{job_name}: {message}")


class SchedulerError(TunegitError):
    """A scheduler command failed in a way the caller should retry later (not a job failure)."""


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Poll interval: grows while nothing changes or the scheduler errs, with seeded jitter.

    ``delay(attempt)`` is a pure function of (attempt, seed): attempt 0 right after
    a change, +1 for each quiet or failed cycle.
    """

    base_s: float = 30.0
    max_s: float = 600.0
    factor: float = 2.0
    jitter: float = 0.1
    seed: int = 0

    def delay(self, attempt: int) -> float:
        raw = min(self.max_s, self.base_s * self.factor ** min(max(0, attempt), 64))
        spread = random.Random(f"{self.seed}:{attempt}").uniform(-self.jitter, self.jitter)
        return round(raw * (1 + spread), 3)


@dataclasses.dataclass(frozen=True)
class WakeFile:
    """A job's end shows as a file named ``name`` written anywhere under ``directory``."""

    directory: Path
    name: str


class SitePaths(Protocol):
    """Where a site's paths are on this machine (the workspace resolves them)."""

    def site_dir(self, value: str) -> Path: ...


class Backend(Protocol):
    """An executor module: its Executor for a site, and what the loop needs to know of it."""

    def create(self, site: Site, paths: SitePaths) -> Executor:
        """The executor that runs this site's jobs."""
        ...

    def poll_backoff(self, site: Site) -> Backoff:
        """Time between two polls (``base_s``, the default interval) and how it grows while
        the scheduler does not answer."""
        ...

    def wake_files(self, site: Site, paths: SitePaths) -> Sequence[WakeFile]:
        """Files whose writing means a job ended (none: its jobs are polled on the timer)."""
        ...

    def jobs_run_here(self, site: Site) -> bool:
        """Whether the jobs run on the machine that submits them: then every site path is
        on this machine, and one not found here is missing (not "not verifiable here")."""
        ...


def job_environment() -> dict[str, str]:
    """This environment, with the running Python's bin directory first on PATH (jobs find
    this Python's `tune` and `inspect`, wherever they run)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
