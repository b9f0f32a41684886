"""What a scheduler says about jobs, and what that means for runs_status.yaml (pure).

Executors report ``JobObservation``s in one ``Poll`` per cycle, in the scheduler vocabulary
of ``tunegit.core.states`` (``JOB_*``); ``status_from_observation`` reads one as a status.
``JOB_UNKNOWN`` and ``Poll.ok`` False mean "could not tell this cycle", never a failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tunegit.core import states
from tunegit.core.cause import failure_cause

# The scheduler states after which a job never changes again.
FINISHED_JOB_STATES = frozenset(
    {
        states.JOB_COMPLETED, states.JOB_FAILED, states.JOB_CANCELLED, states.JOB_TIMEOUT,
        states.JOB_OUT_OF_MEMORY, states.JOB_NODE_FAIL, states.JOB_PREEMPTED,
    }
)  # fmt: skip
# The reason of a job whose dependency can never be satisfied (SLURM's word, used by all).
DEPENDENCY_NEVER_SATISFIED = "DependencyNeverSatisfied"
CUDA_OOM_MARKERS = ("CUDA out of memory", "torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError")


@dataclasses.dataclass(frozen=True)
class JobObservation:
    """What the scheduler says about one job this cycle (states from ``tunegit.core.states``)."""

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
    nothing in it may be read as a failure. ``origins`` gives, for a job found by name, the
    script it runs (where the executor can tell), so that a job of the same name started
    from elsewhere is not taken for this experiment's. ``lost`` holds the ids the executor
    looked for and is sure it does not know (what was not found, and where); an id in neither
    ``jobs`` nor ``lost`` is only unknown this cycle.
    """

    jobs: Mapping[str, JobObservation]
    names: Mapping[str, str]
    ok: bool = True
    error: str = ""
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)
    lost: Mapping[str, str] = dataclasses.field(default_factory=dict)


def status_from_observation(
    obs: JobObservation, log_text: str | None = None
) -> tuple[str | None, str, str]:
    """What the scheduler's word means for runs_status.yaml: (state, reason, message).

    State None means "unknown this cycle: keep the last state" (never a failure).
    ``log_text`` is the tail of the job's own output: a job that exited non-zero gets its
    cause (``failure_cause``) after the exit code, and a CUDA out-of-memory is told apart.
    """
    state = obs.state
    if _dependency_failed(obs):
        return (
            states.BLOCKED,
            states.REASON_DEPENDENCY_FAILED,
            "a job it depends on did not complete",
        )
    if state == states.JOB_PENDING:
        return states.SUBMITTED, obs.reason, _waiting_message(obs.reason)
    if state in (states.JOB_RUNNING, states.JOB_COMPLETING):
        return states.RUNNING, "", f"running as job {obs.job_id}"
    if state == states.JOB_COMPLETED:
        return states.COMPLETED, "", f"job {obs.job_id} completed"
    if state == states.JOB_CANCELLED:
        return states.CANCELLED, states.REASON_CANCELLED, f"job {obs.job_id} was cancelled"
    if state in _FAILURES:
        return _failure(obs, log_text)
    return None, "", f"job {obs.job_id}: scheduler state {state or 'missing'}, unknown this cycle"


def _dependency_failed(obs: JobObservation) -> bool:
    return obs.reason == DEPENDENCY_NEVER_SATISFIED and obs.state in (
        states.JOB_CANCELLED,
        states.JOB_PENDING,
    )


def _waiting_message(reason: str) -> str:
    return f"waiting in the queue ({reason})" if reason else "waiting in the queue"


# Each scheduler failure as (reason, message): SLURM's own word in the message, to grep sacct.
_FAILURES = {
    states.JOB_FAILED: (states.REASON_NON_ZERO_EXIT, "exited with code {code}"),
    states.JOB_TIMEOUT: (states.REASON_TIMEOUT, "hit its time limit after {elapsed} (TIMEOUT)"),
    states.JOB_OUT_OF_MEMORY: (states.REASON_OOM, "was killed for using more host memory "
                               "than it asked for (OUT_OF_MEMORY)"),
    states.JOB_NODE_FAIL: (states.REASON_NODE_FAIL, "was lost when its node failed (NODE_FAIL)"),
    states.JOB_PREEMPTED: (states.REASON_PREEMPTED, "was preempted to make room for another "
                           "job (PREEMPTED)"),
}


def _failure(obs: JobObservation, log_text: str | None) -> tuple[str, str, str]:
    """A job that exited non-zero says why with its log's cause (its exception line); the
    scheduler's own failures (time limit, memory, node, preemption) say it in its words."""
    reason, template = _FAILURES[obs.state]
    elapsed = "?" if obs.elapsed_s is None else f"{obs.elapsed_s:.0f} s"
    code = "?" if obs.exit_code is None else str(obs.exit_code)
    message = f"job {obs.job_id} " + template.format(code=code, elapsed=elapsed)
    if obs.state != states.JOB_FAILED:
        return states.FAILED, reason, message
    found = failure_cause(log_text or "")
    cause = f": {found}" if found else ""
    if has_cuda_oom(log_text):
        oom = f"job {obs.job_id} ran out of GPU memory"
        return states.FAILED, states.REASON_CUDA_OOM, oom + cause
    if obs.reason not in ("", states.REASON_NON_ZERO_EXIT):  # BadConstraints, ProcessLost
        return states.FAILED, obs.reason, f"job {obs.job_id} failed: {obs.reason}"
    return states.FAILED, reason, message + cause


def has_cuda_oom(log_text: str | None) -> bool:
    return bool(log_text) and any(marker in (log_text or "") for marker in CUDA_OOM_MARKERS)
