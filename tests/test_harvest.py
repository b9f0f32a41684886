"""Harvest on completion, through the tools' contracts: what an evaluation's own log says
decides its state, and every change of state is a transition of the cycle.

The scheduler part is faked (a job "completes" without running); the inspect logs are real,
written offline by inspect's mock model, one of them by a task that raises.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pytest

from planfixtures import LOCAL_FILES, make_repo, tiny_plan, weightless_model
from tunegit.commands.run import describe
from tunegit.core.records import Transition
from tunegit.core.states import (
    COMPLETED,
    FAILED,
    JOB_COMPLETED,
    REASON_EVAL_STATUS,
    SUBMITTED,
)
from tunegit.edges.analysis import analyse
from tunegit.edges.gitstore import status_message
from tunegit.edges.scaffold import render_context
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.executors.base import JobObservation, JobPlan, Poll
from tunegit.files import read_status
from tunegit.loop.engine import cycle
from tunegit.tools import get_evaluation

pytestmark = pytest.mark.train

RUN, KEY = "tiny-llama_rank8", "capitalization_epoch_0"


class CompletingExecutor:
    """Takes every job; every job it is asked about has completed (exit 0)."""

    name = "completing"
    supports_dependencies = True

    def __init__(self) -> None:
        self.next_id = 1

    def submit(self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None,
               ) -> dict[str, str]:
        ids = {job.name: str(self.next_id + i) for i, job in enumerate(jobs)}
        self.next_id += len(jobs)
        return ids

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        return Poll({i: JobObservation(i, JOB_COMPLETED, exit_code=0, elapsed_s=60.0)
                     for i in job_ids}, {})

    def cancel(self, job_ids: Collection[str]) -> None:
        pass


def write_eval_log(log_dir: Path, *, broken: bool) -> None:
    """A real .eval log of two scorers, or of status `error` when the solver raises.

    The solver answers by itself: inspect's mock model would count tokens with a
    tokenizer it downloads.
    """
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import includes, match
    from inspect_ai.solver import Generate, Solver, TaskState, solver

    @solver
    def answer() -> Solver:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            if broken:
                raise RuntimeError("the task broke")
            state.output = ModelOutput.from_content(model="mockllm/model", content="an output")
            return state
        return solve

    task = Task(dataset=[Sample(input="say it", target="output")], solver=answer(),
                scorer=[includes(), match()])
    inspect_eval(task, model="mockllm/model", log_dir=str(log_dir), display="none")


def eval_log_dir(ws: Workspace, name: str) -> Path:
    a = analyse(ws, ws.experiment_dir(name) / PLAN_FILE)
    ctx = render_context(a)
    run = a.expansion.run(RUN)
    ev = next(e for e in a.expansion.evaluations_of(RUN) if e.key == KEY)
    return Path(get_evaluation(ctx.plan.tools.evaluation).eval_log_dir(ctx, run, ev))


def submit_then_complete(tmp_path: Path, *, broken: bool) -> tuple[Workspace, list[Transition]]:
    pytest.importorskip("inspect_ai")
    root = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": tiny_plan("exp")})
    weightless_model(root)  # the preflight finds the model (the executor completes the job)
    ws, executor = Workspace(root), CompletingExecutor()
    first = cycle(ws, ["exp"], now="2026-01-01T00:00:00Z", plan_commit=None,
                  executor_for=lambda site: executor)
    assert [(t.key, t.new) for t in first.transitions] == [(None, SUBMITTED), (KEY, SUBMITTED)]
    write_eval_log(eval_log_dir(ws, "exp"), broken=broken)
    second = cycle(ws, ["exp"], now="2026-01-01T00:05:00Z", plan_commit=None,
                   executor_for=lambda site: executor)
    assert not second.errors, second.errors
    return ws, list(second.transitions)


def test_a_completed_evaluation_whose_log_says_error_moves_to_failed_as_a_transition(
        tmp_path: Path) -> None:
    ws, transitions = submit_then_complete(tmp_path, broken=True)
    cause = "eval log status error: RuntimeError('the task broke')"
    failed = Transition("exp", RUN, KEY, COMPLETED, FAILED, "2", REASON_EVAL_STATUS, cause)
    assert transitions == [Transition("exp", RUN, None, SUBMITTED, COMPLETED, "1"),
                           Transition("exp", RUN, KEY, SUBMITTED, COMPLETED, "2"), failed]
    status = read_status(ws.experiment_dir("exp") / STATUS_FILE)
    assert status is not None
    step = status.step(RUN, KEY)
    assert (step.status, step.reason, step.last_updated) == (
        FAILED, REASON_EVAL_STATUS, "2026-01-01T00:05:00Z")
    assert step.message == cause
    # What the status commit and `tunegit run` say agrees with runs_status.yaml.
    message = status_message(transitions, None)
    assert message.splitlines()[0] == "status(exp): 2 completed, 1 failed"
    assert f"exp/{RUN} {KEY}: completed -> failed (job 2) [EvalLogNotSuccess]: {cause}\n" in message
    assert describe(failed) == f"{RUN} / {KEY}: completed -> failed: EvalLogNotSuccess: {cause}"


def test_a_successful_evaluation_records_every_scorers_metrics(tmp_path: Path) -> None:
    ws, transitions = submit_then_complete(tmp_path, broken=False)
    assert [t.new for t in transitions] == [COMPLETED, COMPLETED]
    status = read_status(ws.experiment_dir("exp") / STATUS_FILE)
    assert status is not None
    step = status.step(RUN, KEY)
    assert step.status == COMPLETED and step.reason is None
    assert step.metrics is not None and list(step.metrics) == ["includes", "match"]
    assert set(step.metrics["match"]) >= {"accuracy", "stderr"}
    # The headline score stays the first scorer's accuracy, as before.
    assert (step.metric, step.score) == ("accuracy", step.metrics["includes"]["accuracy"])
    assert step.samples == 1  # n, for the interval where the log is not at hand
    assert step.output is not None and step.output.endswith(".eval")
