"""reconcile.decide, table-driven: (plan, status before, scheduler's answer) -> (submissions,
status after). Pure: no scheduler, no files, no clock. Each row is named for a behaviour."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from tunegit.core import states
from tunegit.core.expand import Expansion, expand
from tunegit.core.jobplan import job_name
from tunegit.core.reconcile import (
    SUBMIT_BACKOFF_MAX_S,
    RetryError,
    cancelled,
    decide,
    deferred,
    hold_all,
    retry,
)
from tunegit.core.status import StatusFile, Step, initial
from tunegit.executors.base import JobObservation, Poll
from tunegit.spec.plan import Plan

EXP = "exp"
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"
R8, R32, BASE = "tiny-llama_rank8", "tiny-llama_rank32", "tiny-llama_base"
EV, EVB = "capitalization_epoch_1", "capitalization"
FT8, FT32 = job_name(EXP, R8, "ft"), job_name(EXP, R32, "ft")
EV8, EV32, EVBASE = job_name(EXP, R8, EV), job_name(EXP, R32, EV), job_name(EXP, BASE, EVB)
FT8_A2, EV8_A2 = job_name(EXP, R8, "ft", 2), job_name(EXP, R8, EV, 2)  # second attempts

Where = tuple[str, str | None]  # (run, evaluation key or None for fine-tuning)


def expansion() -> Expansion:
    return expand(Plan.model_validate({
        "name": EXP, "question": "q", "models": ["tiny-llama"],
        "dataset": {"path": "tasks/capitalization/input/words_5L_80P_200.json"},
        "factors": {"lora_rank": [8, 32]}, "controls": True,
        "run_name": "tiny-llama_rank{lora_rank}",
        "training": {"epochs": 2, "batch_size": 4, "packed": False},
        "evaluation": {"epochs": "last", "tasks": [
            {"name": "capitalization", "script": "tasks/capitalization/eval.py"}]},
    }))


EXPANSION = expansion()


def status(steps: Mapping[Where, Step] | None = None) -> StatusFile:
    s = initial(EXPANSION, EXP)
    for (run, key), step in (steps or {}).items():
        s = s.with_step(run, key, step)
    return s


def live(job_id: str, name: str, state: str = states.SUBMITTED, **kw: Any) -> Step:
    return Step(state, job_id=job_id, job_name=name, attempt=1, last_updated=NOW, **kw)


def obs(job_id: str, state: str, reason: str = "", **kw: Any) -> JobObservation:
    return JobObservation(job_id, state, reason, **kw)


def poll(*jobs: JobObservation, names: Mapping[str, str] | None = None) -> Poll:
    return Poll({j.job_id: j for j in jobs}, dict(names or {}))


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    before: StatusFile
    poll: Poll
    submits: tuple[tuple[str, str | None, tuple[str, ...]], ...]  # (run, key, after)
    after: Mapping[Where, tuple[str, str | None]]  # (state, reason) expected after
    dependencies: bool = True
    capacity: int | None = None
    logs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    held: Mapping[Where, str] = dataclasses.field(default_factory=dict)


FAILURES = [(states.JOB_TIMEOUT, states.REASON_TIMEOUT),
            (states.JOB_OUT_OF_MEMORY, states.REASON_OOM),
            (states.JOB_NODE_FAIL, states.REASON_NODE_FAIL),
            (states.JOB_PREEMPTED, states.REASON_PREEMPTED)]

ROWS = [
    Row("pending_finetunes_submitted_evals_chained_with_after",
        status(), poll(),
        ((R8, None, ()), (R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.PENDING, None), (BASE, None): (states.SKIPPED, "BaseModel")}),
    Row("capacity_respected_local",
        status({(R8, None): live("local-1", FT8, states.RUNNING)}), poll(obs("local-1", "RUNNING")),
        ((R32, None, ()),), {(R32, None): (states.PENDING, None)},
        dependencies=False, capacity=2),
    Row("evals_held_until_finetune_completed_without_dependencies",
        status({(R8, None): live("local-1", FT8, states.RUNNING),
                (R32, None): live("local-2", FT32, states.RUNNING)}),
        poll(obs("local-1", "RUNNING"), obs("local-2", "RUNNING")),
        ((BASE, EVB, ()),), {(R8, EV): (states.PENDING, None)},
        dependencies=False, capacity=10),
    Row("evals_submitted_once_finetune_completed_without_dependencies",
        status({(R8, None): live("local-1", FT8, states.RUNNING),
                (R32, None): live("local-2", FT32, states.RUNNING),
                (BASE, EVB): live("local-3", EVBASE, states.RUNNING)}),
        poll(obs("local-1", "COMPLETED", exit_code=0), obs("local-2", "RUNNING"),
             obs("local-3", "RUNNING")),
        ((R8, EV, ()),), {(R8, None): (states.COMPLETED, None)},
        dependencies=False, capacity=10),
    Row("controls_evals_submitted_at_once_without_dependencies",
        status(), poll(), ((R8, None, ()), (R32, None, ()), (BASE, EVB, ())), {},
        dependencies=False, capacity=10),
    Row("evals_chained_on_a_live_finetune_by_its_recorded_name",
        status({(R8, None): live("7_0", FT8), (R32, None): live("7_1", FT32),
                (BASE, EVB): live("9", EVBASE)}),
        poll(obs("7_0", "PENDING", "Priority"), obs("7_1", "RUNNING"), obs("9", "RUNNING")),
        ((R8, EV, (FT8,)), (R32, EV, (FT32,))),
        {(R8, None): (states.SUBMITTED, "Priority"), (R32, None): (states.RUNNING, None)}),
    Row("job_found_by_name_is_adopted_not_resubmitted",
        status(), poll(obs("41_0", "RUNNING"), names={FT8: "41_0", EVBASE: "42"}),
        ((R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,))),
        {(R8, None): (states.SUBMITTED, None), (BASE, EVB): (states.SUBMITTED, None)}),
    Row("failed_finetune_blocks_pending_evals",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}),
        poll(obs("7_0", "FAILED", "NonZeroExitCode", exit_code=1)),
        ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.FAILED, states.REASON_NON_ZERO_EXIT),
         (R8, EV): (states.BLOCKED, states.REASON_DEPENDENCY_FAILED)}),
    Row("cancelled_finetune_blocks_pending_evals",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}), poll(obs("7_0", "CANCELLED")),
        ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.CANCELLED, states.REASON_CANCELLED),
         (R8, EV): (states.BLOCKED, states.REASON_DEPENDENCY_FAILED)}),
    Row("slurm_dependency_never_satisfied_is_blocked_not_failed",
        status({(R8, None): Step(states.FAILED, job_id="7_0", reason="NonZeroExitCode"),
                (R8, EV): live("8", EV8)}),
        poll(obs("8", "CANCELLED", "DependencyNeverSatisfied")),
        ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, EV): (states.BLOCKED, states.REASON_DEPENDENCY_FAILED)}),
    Row("poll_not_ok_changes_nothing_and_submits_nothing",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}),
        Poll({}, {}, ok=False, error="squeue rc=1: Unable to contact slurm controller"),
        (), {(R8, None): (states.RUNNING, None), (R32, None): (states.PENDING, None)}),
    Row("unknown_state_keeps_the_last_state",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}), poll(obs("7_0", "UNKNOWN")),
        ((R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.RUNNING, None)}),
    Row("job_missing_from_the_answer_keeps_the_last_state",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}), poll(),
        ((R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.RUNNING, None)}),
    *[Row(f"{state.lower()}_is_failed_with_reason_{reason}",
          status({(R8, None): live("7_0", FT8, states.RUNNING)}),
          poll(obs("7_0", state, elapsed_s=61.0)),
          ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
          {(R8, None): (states.FAILED, reason),
           (R8, EV): (states.BLOCKED, states.REASON_DEPENDENCY_FAILED)})
      for state, reason in FAILURES],
    Row("refused_for_now_waits_for_its_next_try",
        status({(R8, None): Step(refusals=1, next_try="2026-01-01T01:00:01Z", message="x")}),
        poll(), ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.PENDING, None)}),
    Row("refused_for_now_is_submitted_again_at_its_next_try",
        status({(R8, None): Step(refusals=3, next_try=LATER, message="x")}),
        poll(), ((R8, None, ()), (R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)),
                 (BASE, EVB, ())),
        {(R8, None): (states.PENDING, None)}),
    Row("cuda_oom_in_the_log_is_failed_cuda_out_of_memory",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}),
        poll(obs("7_0", "FAILED", "NonZeroExitCode", exit_code=1)),
        ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.FAILED, states.REASON_CUDA_OOM)},
        logs={"7_0": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"}),
    Row("preflight_holds_a_run_blocked_and_submits_nothing_for_it",
        status(), poll(), ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.BLOCKED, states.REASON_PREFLIGHT),
         (R8, EV): (states.BLOCKED, states.REASON_PREFLIGHT)},
        held={(R8, None): "model missing", (R8, EV): "model missing"}),
    Row("held_steps_are_pending_again_and_submitted_once_the_preflight_passes",
        status({(R8, None): Step(states.BLOCKED, reason=states.REASON_PREFLIGHT, message="x"),
                (R8, EV): Step(states.BLOCKED, reason=states.REASON_CANNOT_RUN, message="y")}),
        poll(), ((R8, None, ()), (R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)),
                 (BASE, EVB, ())),
        {(R8, None): (states.PENDING, None), (R8, EV): (states.PENDING, None)}),
    Row("a_step_blocked_by_a_failed_dependency_is_not_released_by_the_preflight",
        status({(R8, None): Step(states.FAILED, job_id="7_0", reason="NonZeroExitCode"),
                (R8, EV): Step(states.BLOCKED, reason=states.REASON_DEPENDENCY_FAILED)}),
        poll(), ((R32, None, ()), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, EV): (states.BLOCKED, states.REASON_DEPENDENCY_FAILED)}),
    Row("the_preflight_never_touches_a_live_step",
        status({(R8, None): live("7_0", FT8, states.RUNNING)}), poll(obs("7_0", "RUNNING")),
        ((R32, None, ()), (R8, EV, (FT8,)), (R32, EV, (FT32,)), (BASE, EVB, ())),
        {(R8, None): (states.RUNNING, None)}, held={(R8, None): "model missing"}),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decide(row: Row) -> None:
    d = decide(EXPANSION, row.before, row.poll, experiment=EXP, now=LATER,
               capacity=row.capacity, dependencies=row.dependencies, logs=row.logs,
               held=row.held)
    assert [(s.run, s.key, s.after) for s in d.submit] == list(row.submits)
    assert all(s.name == job_name(EXP, s.run, s.key or "ft") for s in d.submit)
    for (run, key), (state, reason) in row.after.items():
        step = d.status.step(run, key)
        assert (step.status, step.reason) == (state, reason), (run, key, step)
    for (run, key, new), (_, _, old) in zip(d.status.steps(), row.before.steps(), strict=True):
        moved = new.status != old.status
        assert new.last_updated == (LATER if moved else old.last_updated), (run, key)
    assert {(t.run, t.key) for t in d.transitions} == {
        (r, k) for (r, k, new), (_, _, old) in zip(d.status.steps(), row.before.steps(),
                                                  strict=True) if new.status != old.status}


def test_a_plan_that_cannot_run_blocks_its_pending_steps_and_leaves_live_ones() -> None:
    before = status({(R8, None): live("7_0", FT8, states.RUNNING)})
    after, transitions = hold_all(before, EXP, "unknown site 'nowhere'",
                                  states.REASON_CANNOT_RUN, LATER)
    assert after.step(R8, None) == before.step(R8, None)
    blocked = after.step(R32, None)
    assert (blocked.status, blocked.reason, blocked.message) == (
        states.BLOCKED, states.REASON_CANNOT_RUN, "unknown site 'nowhere'")
    assert {(t.run, t.key) for t in transitions} == {
        (r, k) for r, k, s in before.steps() if s.status == states.PENDING}
    assert hold_all(after, EXP, "unknown site 'nowhere'", states.REASON_CANNOT_RUN,
                    "2031-01-01T00:00:00Z") == (after, ())  # the same again: no change at all


def test_adopted_job_keeps_its_id_and_name() -> None:
    d = decide(EXPANSION, status(), poll(names={FT8: "41_0"}), experiment=EXP, now=LATER,
               capacity=None, dependencies=True)
    step = d.status.step(R8, None)
    assert (step.job_id, step.job_name, step.attempt) == ("41_0", FT8, 1)


def test_a_pending_record_the_plan_no_longer_has_is_never_submitted() -> None:
    # A status file from before the plan changed its epochs (epoch_19 -> epoch_1): the old key
    # is no evaluation of the plan, so nothing can be rendered or submitted for it.
    before = status({(R8, None): Step(states.COMPLETED, job_id="5", last_updated=NOW),
                     (R8, "capitalization_epoch_19"): Step(states.PENDING, attempt=2)})
    d = decide(EXPANSION, before, poll(), experiment=EXP, now=LATER, capacity=None,
               dependencies=True)
    assert [(s.run, s.key) for s in d.submit if s.run == R8] == [(R8, EV)]


def test_terminal_observation_records_exit_code_and_elapsed() -> None:
    before = status({(R8, None): live("7_0", FT8, states.RUNNING, started=NOW)})
    d = decide(EXPANSION, before,
               poll(obs("7_0", "COMPLETED", exit_code=0, elapsed_s=95.0, end=LATER, start=NOW)),
               experiment=EXP, now=LATER, capacity=None, dependencies=True)
    step = d.status.step(R8, None)
    assert (step.status, step.exit_code, step.elapsed_s, step.ended) == (
        states.COMPLETED, 0, 95.0, LATER)


def test_a_pass_with_nothing_new_yields_an_identical_status() -> None:
    """A running job's clock moves every poll; the record must not (no churn, no commit)."""
    before = status({(R8, None): live("7_0", FT8, states.RUNNING, started=NOW,
                                      message="running as job 7_0"),
                     (R32, None): live("7_1", FT32, states.SUBMITTED, reason="Priority",
                                       message="waiting in the queue (Priority)"),
                     (R8, EV): live("8", EV8, reason="Dependency",
                                    message="waiting in the queue (Dependency)"),
                     (R32, EV): live("9", EV32, reason="Dependency",
                                     message="waiting in the queue (Dependency)"),
                     (BASE, EVB): live("10", EVBASE, states.RUNNING, started=NOW,
                                       message="running as job 10")})
    answer = poll(obs("7_0", "RUNNING", elapsed_s=130.0, start=NOW),
                  obs("7_1", "PENDING", "Priority"), obs("8", "PENDING", "Dependency"),
                  obs("9", "PENDING", "Dependency"),
                  obs("10", "RUNNING", elapsed_s=12.0, start=NOW))
    d = decide(EXPANSION, before, answer, experiment=EXP, now=LATER, capacity=None,
               dependencies=True)
    assert d.status == before and d.submit == () and d.transitions == ()


def test_retry_is_a_new_attempt_under_a_new_name() -> None:
    failed = Step(states.FAILED, job_id="7_0", job_name=FT8, attempt=1, last_updated=NOW,
                  reason=states.REASON_TIMEOUT, started=NOW, ended=NOW, elapsed_s=60.0,
                  log="/x/logs/finetune.log")
    before = status({(R8, None): failed,
                     (R8, EV): Step(states.BLOCKED, job_id="8", job_name=EV8, attempt=1,
                                    reason=states.REASON_DEPENDENCY_FAILED)})
    after, transitions = retry(before, EXP, R8, None, LATER)
    ft = after.step(R8, None)
    assert (ft.status, ft.attempt, ft.job_name, ft.job_id, ft.last_updated) == (
        states.PENDING, 2, FT8_A2, None, LATER)
    assert ft.attempts == ({"attempt": 1, "job_id": "7_0", "job_name": FT8, "status": "failed",
                            "reason": "TimeLimit", "started": NOW, "ended": NOW,
                            "elapsed_s": 60.0, "log": "/x/logs/finetune.log",
                            "last_updated": NOW},)
    ev = after.step(R8, EV)
    assert (ev.status, ev.attempt, ev.job_name, ev.attempts[0]["job_id"]) == (
        states.PENDING, 2, EV8_A2, "8")
    assert [(t.run, t.key, t.old, t.new) for t in transitions] == [
        (R8, None, "failed", "pending"), (R8, EV, "blocked", "pending")]
    # The next pass submits both under the new names, the evaluation chained on the new attempt.
    d = decide(EXPANSION, after, poll(names={FT8: "7_0", EV8: "8"}), experiment=EXP,
               now=LATER, capacity=None, dependencies=True)
    subs = {(s.run, s.key): s for s in d.submit}
    assert (subs[R8, None].name, subs[R8, None].attempt) == (FT8_A2, 2)
    assert (subs[R8, EV].name, subs[R8, EV].after) == (EV8_A2, (FT8_A2,))
    assert d.status.step(R8, None).status == states.PENDING  # the old name is not adopted


def test_retried_job_found_by_its_new_name_is_adopted_with_its_attempt() -> None:
    before, _ = retry(status({(R8, None): Step(states.CANCELLED, job_id="7_0", job_name=FT8)}),
                      EXP, R8, None, NOW)
    d = decide(EXPANSION, before, poll(names={FT8_A2: "55"}), experiment=EXP, now=LATER,
               capacity=None, dependencies=True)
    step = d.status.step(R8, None)
    assert (step.status, step.job_id, step.attempt) == (states.SUBMITTED, "55", 2)
    assert (R8, None) not in {(s.run, s.key) for s in d.submit}


def test_blocked_step_never_submitted_just_becomes_pending() -> None:
    before = status({(R8, EV): Step(states.BLOCKED, reason=states.REASON_DEPENDENCY_FAILED)})
    after, _ = retry(before, EXP, R8, EV, LATER)
    step = after.step(R8, EV)
    assert (step.status, step.attempt, step.attempts, step.reason) == (
        states.PENDING, None, (), None)


@pytest.mark.parametrize("state", [states.PENDING, states.SUBMITTED, states.RUNNING,
                                   states.COMPLETED, states.SKIPPED])
def test_only_failed_cancelled_or_blocked_steps_can_be_retried(state: str) -> None:
    with pytest.raises(RetryError, match="only failed, cancelled or blocked"):
        retry(status({(R8, None): Step(state, job_id="1")}), EXP, R8, None, LATER)


def test_cancel_marks_live_and_pending_steps_and_names_live_ids() -> None:
    before = status({(R8, None): live("7_0", FT8, states.RUNNING),
                     (R32, None): Step(states.COMPLETED, job_id="7_1")})
    after, transitions, ids = cancelled(before, EXP, LATER, R8)
    assert ids == ["7_0"]
    assert {(t.run, t.key) for t in transitions} == {(R8, None), (R8, EV)}
    assert after.step(R8, None).reason == states.REASON_CANCELLED
    assert after.step(R32, None).status == states.COMPLETED
    assert after.step(BASE, EVB).status == states.PENDING


@pytest.mark.parametrize(("one", "other"), [
    (("x.y", "z_8", "ft"), ("x", "y.z_8", "ft")),
    (("e", "r", "t.x_epoch_1"), ("e", "r.t", "x_epoch_1")),
    (("e", "r", "ft", 2), ("e", "r.ft", "a2")),
], ids=["experiment_and_run", "run_and_evaluation", "attempt_and_stage"])
def test_job_names_of_different_steps_never_collide(one: tuple[Any, ...],
                                                    other: tuple[Any, ...]) -> None:
    """Names may hold dots, so a dot cannot separate them: each part must stay apart."""
    assert job_name(*one) != job_name(*other)


WORK = "/scratch/out/exp"


@pytest.mark.parametrize(("origin", "adopted"), [
    (f"{WORK}/{R8}/finetune.slurm", True),
    (f"{WORK}/.tunegit/tg-array.sh", True),
    ("/scratch/out/exp-copy/tiny-llama_rank8/finetune.slurm", False),  # a sibling, not inside
    ("/home/other/out/exp/tiny-llama_rank8/finetune.slurm", False),
])
def test_a_job_found_by_name_is_adopted_only_when_it_runs_from_this_experiment(
        origin: str, adopted: bool) -> None:
    """Another checkout of the same experiment (same names, other output_dir) is not ours."""
    answer = Poll({}, {FT8: "41_0"}, origins={FT8: origin})
    d = decide(EXPANSION, status(), answer, experiment=EXP, now=LATER, capacity=None,
               dependencies=True, work_dir=WORK)
    step = d.status.step(R8, None)
    assert (step.status == states.SUBMITTED) is adopted
    assert ((R8, None) in {(s.run, s.key) for s in d.submit}) is not adopted


T9, T10 = "2026-01-01T00:09:59Z", "2026-01-01T00:10:00Z"  # within, then past JobLost's grace
WHERE = "job 7_0 is known neither to squeue nor to sacct"


def test_a_live_job_the_executor_cannot_find_fails_as_job_lost_after_the_grace() -> None:
    before = status({(R8, None): live("7_0", FT8, states.RUNNING, started=NOW)})
    lost = Poll({}, {}, lost={"7_0": WHERE})
    first = decide(EXPANSION, before, lost, experiment=EXP, now=NOW, capacity=None,
                   dependencies=True)
    step = first.status.step(R8, None)
    assert (step.status, step.missing_since, step.last_updated) == (states.RUNNING, NOW, NOW)
    assert step.message == (f"{WHERE} (since {NOW}); failed as JobLost if still missing at "
                            f"{T10}")
    assert first.transitions == ()
    within = decide(EXPANSION, first.status, lost, experiment=EXP, now=T9, capacity=None,
                    dependencies=True)
    assert within.status == first.status  # nothing new: no churn
    past = decide(EXPANSION, within.status, lost, experiment=EXP, now=T10, capacity=None,
                  dependencies=True)
    step = past.status.step(R8, None)
    assert (step.status, step.reason) == (states.FAILED, states.REASON_JOB_LOST)
    assert step.message == f"{WHERE}: not found since {NOW}"
    assert past.status.step(R8, EV).status == states.BLOCKED
    assert [(t.run, t.key, t.new) for t in past.transitions] == [
        (R8, None, states.FAILED), (R8, EV, states.BLOCKED)]


def test_a_lost_job_found_again_is_no_longer_missing() -> None:
    before = status({(R8, None): live("7_0", FT8, states.RUNNING, started=NOW,
                                      missing_since=NOW, message=f"{WHERE} (since {NOW})")})
    d = decide(EXPANSION, before, poll(obs("7_0", "RUNNING", start=NOW)), experiment=EXP,
               now=T10, capacity=None, dependencies=True)
    step = d.status.step(R8, None)
    assert (step.status, step.missing_since, step.message) == (
        states.RUNNING, None, "running as job 7_0")


def test_a_job_merely_absent_from_the_answer_is_unknown_not_lost() -> None:
    """Only an executor's own "not found" counts; an id it did not answer for is unknown."""
    before = status({(R8, None): live("7_0", FT8, states.RUNNING, started=NOW)})
    d = decide(EXPANSION, before, poll(), experiment=EXP, now=T10, capacity=None,
               dependencies=True)
    assert d.status.step(R8, None) == before.step(R8, None)


def test_a_refusal_for_now_backs_off_doubling_up_to_half_an_hour() -> None:
    step, tries = Step(), []
    for _ in range(8):
        step = deferred(step, NOW, "sbatch: QOSMaxSubmitJobPerUserLimit", 60)
        tries.append(step.next_try)
    assert tries[:3] == ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:04:00Z"]
    assert tries[-1] == "2026-01-01T00:30:00Z" and SUBMIT_BACKOFF_MAX_S == 30 * 60
    assert (step.status, step.refusals, step.last_updated) == (states.PENDING, 8, None)
    assert step.message == ("the scheduler refused it for now (8x in a row): "
                            "sbatch: QOSMaxSubmitJobPerUserLimit; tried again from "
                            "2026-01-01T00:30:00Z")
