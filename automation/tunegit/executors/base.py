"""The executor contract shared by the local and SLURM backends.

The reconcile loop hands an executor ``JobSpec``s to submit and asks it, once a
cycle, what it sees. An executor never decides what should run; it only runs
what it is given and reports truthfully, with ``JOB_UNKNOWN`` (or a missing id)
for "could not tell this cycle", never a guessed failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job asks of the scheduler (from the site file and the estimate)."""

    gpus: int = 0
    cpus: int = 1
    mem_gb: int = 4
    time_minutes: int = 60
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    extra: tuple[str, ...] = ()  # further sbatch options from the site, e.g. --mail-type=END


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One job to run: a rendered script, where to run it, and what it waits for.

    ``name`` is deterministic (experiment, run, stage, attempt), so a job can be
    found again by name after a crash. ``after`` names jobs (by ``name``) that
    must complete successfully first.
    """

    name: str
    script: Path
    workdir: Path
    log: Path
    resources: Resources = Resources()
    after: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class JobObservation:
    """What the scheduler says about one job this cycle (states from ``tunegit.states``)."""

    job_id: str
    state: str
    reason: str = ""
    exit_code: int | None = None
    elapsed_s: float | None = None
    start: str | None = None  # ISO-8601 UTC
    end: str | None = None
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Poll:
    """One cycle's answer: jobs by id, and ids of known jobs by name (for crash recovery).

    ``ok`` is False when the scheduler could not be asked this cycle; then
    nothing in it may be read as a failure.
    """

    jobs: Mapping[str, JobObservation]
    names: Mapping[str, str]
    ok: bool = True
    error: str = ""


class Executor(Protocol):
    """A place that runs jobs."""

    name: str
    supports_dependencies: bool  # True: ``after`` is enforced by the scheduler itself

    def submit(self, jobs: Sequence[JobSpec], *, known: Mapping[str, str] | None = None
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
