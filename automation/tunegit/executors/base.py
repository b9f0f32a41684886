"""The executor contract shared by the local and SLURM backends.

The reconcile loop hands an executor ``JobPlan``s (tunegit.core.jobplan) to submit and asks it, once a
cycle, what it sees. An executor never decides what should run; it only runs
what it is given and reports truthfully, with ``JOB_UNKNOWN`` (or a missing id)
for "could not tell this cycle", never a guessed failure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tunegit.core.jobplan import JobPlan, Resources
from tunegit.core.observe import JobObservation, Poll

__all__ = ["Executor", "JobObservation", "JobPlan", "Poll", "Resources", "SubmitError"]


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
        """Cancel jobs; unknown ids are ignored."""
        ...


class SubmitError(Exception):
    """The scheduler refused a job (bad partition, over QOS, ...): not retried blindly."""

    def __init__(self, job_name: str, message: str):
        self.job_name = job_name
        super().__init__(f"{job_name}: {message}")
