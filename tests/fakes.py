"""A fake executor for tests and benchmarks that must not touch a scheduler.

``PendingExecutor`` takes every job it is given and answers every poll "PENDING", so the
loop keeps its jobs live and nothing ever trains. It records what it was asked: the job
names of each ``submit`` call and the (ids, names) of each ``poll`` call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from tunegit.executors.base import JobObservation, JobPlan, Poll


class PendingExecutor:
    """Takes every job (ids first_id, first_id + 1, ...); reports every job pending."""

    name = "pending"
    supports_dependencies = True

    def __init__(self, first_id: int = 1) -> None:
        self.next_id = first_id
        self.submits: list[tuple[str, ...]] = []
        self.polls: list[tuple[frozenset[str], frozenset[str]]] = []

    def submit(self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None,
               ) -> dict[str, str]:
        self.submits.append(tuple(job.name for job in jobs))
        ids = {job.name: str(self.next_id + i) for i, job in enumerate(jobs)}
        self.next_id += len(jobs)
        return ids

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        self.polls.append((frozenset(job_ids), frozenset(names)))
        return Poll({i: JobObservation(i, "PENDING") for i in job_ids}, {})

    def cancel(self, job_ids: Collection[str]) -> None:
        pass
