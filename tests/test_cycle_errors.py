"""Errors: one family under TunegitError, and a cycle's errors typed by what happens next."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pytest

from planfixtures import make_repo, minimal_plan, write_plan
from tunegit.core import records
from tunegit.core.reconcile import RetryError
from tunegit.core.status import StatusFormatError
from tunegit.edges.workspace import Workspace
from tunegit.errors import TunegitError
from tunegit.executors.base import JobPlan, Poll, SchedulerError, SubmitError
from tunegit.executors.slurm import PartialSubmitError
from tunegit.loop.engine import cycle


@pytest.mark.parametrize("error", [SubmitError, PartialSubmitError, SchedulerError, RetryError,
                                   StatusFormatError])
def test_every_error_a_user_can_fix_is_a_tunegit_error(error: type[Exception]) -> None:
    """The handler around main prints these with their hint (exit 1), never a traceback."""
    assert issubclass(error, TunegitError)


class DownExecutor:
    """A scheduler that does not answer: every poll fails; nothing may be submitted."""

    name = "down"
    supports_dependencies = True

    def submit(self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None,
               ) -> dict[str, str]:
        raise AssertionError("submitted while the scheduler did not answer")

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        return Poll({}, {}, ok=False, error="squeue: connection refused")

    def cancel(self, job_ids: Collection[str]) -> None:
        pass


def test_cycle_errors_carry_their_experiment_and_kind_and_print_as_before(
        tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    (root / "sites" / "cluster.yaml").write_text(
        "executor: slurm\nmodels_dir: /models-not-here\noutput_dir: out\n")
    plan = minimal_plan("good").replace("site: della\n", "site: cluster\n")
    write_plan(root, "good", plan)
    write_plan(root, "bad", plan.replace("name: good\n", "name: bad\n").replace(
        "question: Does rank matter?\n", ""))
    result = cycle(Workspace(root), ["bad", "good"], now="2026-01-01T00:00:00Z",
                   plan_commit=None, executor_for=lambda site: DownExecutor())
    assert [(e.experiment, e.kind) for e in result.errors] == [
        ("bad", records.INVALID_PLAN), ("good", records.SCHEDULER_UNANSWERED)]
    assert all(e.kind in records.CYCLE_ERROR_KINDS for e in result.errors)
    bad, down = map(str, result.errors)
    assert bad.startswith("bad: invalid plan; nothing submitted until it is fixed:\n"
                          "experiments/bad/experiment.yaml:"), bad
    assert down == ("good: scheduler not answering (squeue: connection refused); states "
                    "unknown this cycle, nothing submitted")
