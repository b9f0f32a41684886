"""SLURM as text: the command lines tunegit runs, and parsers for what comes back.

Pure: no subprocess, clock or filesystem. ``slurm.py`` runs the commands and
feeds their output in. Each parser is tested on output recorded from a real
SLURM 22.05 (``tests/fixtures/slurm/``).

Formats chosen (SLURM 22.05, and later):

- ``squeue -O`` with a ``|`` suffix on every field prints unpadded, untruncated
  fields and, unlike ``-o``, the job's raw exit status (``exit_code``: 768 is
  exit 3), so a failure's exit code needs no ``sacct``. ``Name`` is last, so a
  foreign job's name containing ``|`` cannot shift the fields before it.
- ``sacct -X -n -P`` (allocations only, no header, ``|``-separated, untruncated).
  ``State`` may read ``CANCELLED by 0``: the first word is the state. ``Reason``
  tells a dependency kill (``Dependency``) from a user's scancel (``None``).
- the ``jobcomp/filetxt`` log (one ``Key=Value ...`` line per finished job) is
  the record when accounting is off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path, PurePath

from tunegit.core import states
from tunegit.core.jobplan import header_options, job_options, sbatch_options
from tunegit.executors.base import JobObservation, JobPlan

SQUEUE_FIELDS = (
    "JobArrayID", "JobID", "ArrayJobID", "ArrayTaskID", "State", "Reason", "exit_code",
    "StartTime", "EndTime", "TimeUsed", "Dependency", "Command", "Name",
)  # fmt: skip
SQUEUE_FORMAT = ",".join(f"{field}:|" for field in SQUEUE_FIELDS)
SACCT_FIELDS = (
    "JobID", "JobIDRaw", "JobName", "State", "ExitCode", "Elapsed", "Start", "End", "Reason",
)  # fmt: skip
SACCT_FORMAT = ",".join(SACCT_FIELDS)
ACCOUNTING_DISABLED = "accounting storage is disabled"
REGISTRY_MARKER = "# tunegit-tasks: "
ARRAY_DIR = ".tunegit"

# SLURM's job states -> the executor vocabulary (tunegit.core.states.JOB_*); unlisted -> UNKNOWN.
_JOB_STATES = {
    "PENDING": states.JOB_PENDING,
    "REQUEUED": states.JOB_PENDING,
    "REQUEUE_HOLD": states.JOB_PENDING,
    "REQUEUE_FED": states.JOB_PENDING,
    "RESV_DEL_HOLD": states.JOB_PENDING,
    "CONFIGURING": states.JOB_PENDING,
    "RUNNING": states.JOB_RUNNING,
    "SUSPENDED": states.JOB_RUNNING,
    "STOPPED": states.JOB_RUNNING,
    "SIGNALING": states.JOB_RUNNING,
    "RESIZING": states.JOB_RUNNING,
    "STAGE_OUT": states.JOB_COMPLETING,
    "COMPLETING": states.JOB_COMPLETING,
    "COMPLETED": states.JOB_COMPLETED,
    "FAILED": states.JOB_FAILED,
    "SPECIAL_EXIT": states.JOB_FAILED,
    "CANCELLED": states.JOB_CANCELLED,
    "REVOKED": states.JOB_CANCELLED,
    "TIMEOUT": states.JOB_TIMEOUT,
    "DEADLINE": states.JOB_TIMEOUT,
    "OUT_OF_MEMORY": states.JOB_OUT_OF_MEMORY,
    "NODE_FAIL": states.JOB_NODE_FAIL,
    "BOOT_FAIL": states.JOB_NODE_FAIL,
    "PREEMPTED": states.JOB_PREEMPTED,
}
FINISHED_JOB_STATES = frozenset(
    {
        states.JOB_COMPLETED, states.JOB_FAILED, states.JOB_CANCELLED, states.JOB_TIMEOUT,
        states.JOB_OUT_OF_MEMORY, states.JOB_NODE_FAIL, states.JOB_PREEMPTED,
    }
)  # fmt: skip
DEPENDENCY_NEVER_SATISFIED = "DependencyNeverSatisfied"
CUDA_OOM_MARKERS = ("CUDA out of memory", "torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError")
_NO_VALUE = frozenset({"", "N/A", "NONE", "None", "Unknown", "(null)", "INVALID"})


# ---------------------------------------------------------------- command lines


def squeue_argv() -> list[str]:
    """One query for every job of the calling user, finished ones included (-t all)."""
    return ["squeue", "--me", "-h", "-t", "all", "-O", SQUEUE_FORMAT]


def sacct_argv(job_ids: Iterable[str]) -> list[str]:
    return ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", SACCT_FORMAT]


def scancel_argv(job_ids: Iterable[str]) -> list[str]:
    return ["scancel", *job_ids]


def dependency_flags(after_ids: Sequence[str]) -> list[str]:
    """afterok on every parent; a failed parent cancels the job instead of leaving it pending."""
    if not after_ids:
        return []
    return [f"--dependency=afterok:{':'.join(after_ids)}", "--kill-on-invalid-dep=yes"]


def sbatch_argv(job: JobPlan, after_ids: Sequence[str] = ()) -> list[str]:
    """The sbatch command line (argv, no shell) for one job; ``after_ids`` are SLURM ids.

    Name, output, directory and resources are in the script's own #SBATCH header,
    rendered from the same JobPlan (``check_header`` makes sure): none is repeated here.
    """
    return ["sbatch", "--parsable", *dependency_flags(after_ids), str(job.script)]


def check_header(job: JobPlan, script_text: str) -> str:
    """'' when the script's #SBATCH header says what the JobPlan says; else what differs."""
    want, have = job_options(job), sorted(header_options(script_text))
    if want == have:
        return ""
    missing = [o for o in want if o not in have]
    extra = [o for o in have if o not in want]
    return ("its #SBATCH header does not match the job's plan"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; not planned {', '.join(extra)}" if extra else ""))


# ---------------------------------------------------------------- job arrays


@dataclasses.dataclass(frozen=True)
class ArrayPlan:
    """Several jobs with equal resources run as one SLURM job array through a wrapper."""

    name: str  # the SLURM job name of the array
    wrapper: Path  # the generated script, the registry of task names is inside it
    output: Path  # SLURM's own per-task output (%a = task index); each task also writes job.log
    tasks: tuple[JobPlan, ...]


def array_name(names: Sequence[str]) -> str:
    """Deterministic: the tasks' common dotted prefix, then a hash of all their names."""
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:10]
    prefix = _common_prefix(names)
    return f"{prefix}array-{digest}"


def _common_prefix(names: Sequence[str]) -> str:
    common = names[0]
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    cut = max(common.rfind("."), common.rfind("_"))
    return common[: cut + 1]


def plan_array(jobs: Sequence[JobPlan]) -> ArrayPlan:
    """Where the wrapper goes: ``<common parent of the workdirs>/.tunegit/<array name>.sh``."""
    name = array_name([job.name for job in jobs])
    parent = _common_parent([job.workdir.parent for job in jobs])
    folder = parent / ARRAY_DIR
    return ArrayPlan(name, folder / f"{name}.sh", folder / f"{name}-%a.out", tuple(jobs))


def _common_parent(paths: Sequence[Path]) -> Path:
    parts = [path.parts for path in paths]
    common: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return Path(*common) if common else Path(".")


def render_array_wrapper(plan: ArrayPlan) -> str:
    """The array's batch script: task N goes to job N's workdir and runs its script there.

    The second line is the registry (JSON list of task names in task order), which
    is how a name is found again from the array id after a restart.
    """
    names = [job.name for job in plan.tasks]
    lines = [
        "#!/bin/bash",
        f"{REGISTRY_MARKER}{json.dumps(names)}",
        f"# generated by tunegit for the job array {plan.name}; do not edit",
        *(f"#SBATCH {option}" for option in array_options(plan)),
        "set -euo pipefail",
        'case "${SLURM_ARRAY_TASK_ID:?not a job array task}" in',
    ]
    for index, job in enumerate(plan.tasks):
        workdir, script, log = (shlex.quote(str(p)) for p in (job.workdir, job.script, job.log))
        lines.append(f"  {index}) cd -- {workdir} && exec bash -- {script} > {log} 2>&1 ;;")
    lines += [
        '  *) echo "tunegit: no task ${SLURM_ARRAY_TASK_ID} in this array" >&2; exit 2 ;;',
        "esac",
        "",
    ]
    return "\n".join(lines)


def parse_array_registry(wrapper_text: str) -> list[str]:
    """Task names in task order, from a wrapper written by ``render_array_wrapper``."""
    for line in wrapper_text.splitlines()[:5]:
        if line.startswith(REGISTRY_MARKER):
            names = json.loads(line[len(REGISTRY_MARKER) :])
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    return []


def is_array_wrapper(command: str) -> bool:
    path = PurePath(command)
    return path.parent.name == ARRAY_DIR and path.suffix == ".sh"


def array_options(plan: ArrayPlan) -> list[str]:
    """The wrapper's #SBATCH header: the tasks' shared resources, one task per job."""
    first = plan.tasks[0]
    return sbatch_options(name=plan.name, chdir=first.workdir, output=plan.output,
                          resources=first.resources, array=f"0-{len(plan.tasks) - 1}")


def sbatch_array_argv(plan: ArrayPlan) -> list[str]:
    return ["sbatch", "--parsable", str(plan.wrapper)]


def parse_sbatch_id(stdout: str) -> str:
    """``--parsable`` prints ``ID`` or ``ID;cluster``; '' when there is no id."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = line.split(";")[0].strip()
    return job_id if job_id.isdigit() else ""


# ---------------------------------------------------------------- values


def job_state(text: str) -> str:
    """SLURM state text (``CANCELLED by 0``, ``CANCELLED+``) -> a ``states.JOB_*`` constant."""
    word = text.split(" ")[0].rstrip("+") if text else ""
    return _JOB_STATES.get(word, states.JOB_UNKNOWN)


def exit_code_from_status(raw: str) -> int | None:
    """squeue's ``exit_code`` is a wait status: 768 -> 3; killed by signal 15 -> 143."""
    if not raw.isdigit():
        return None
    status = int(raw)
    signal = status & 0x7F
    return 128 + signal if signal else status >> 8


def exit_code_from_pair(text: str) -> int | None:
    """sacct's ``ExitCode`` is ``code:signal``: ``3:0`` -> 3; ``0:15`` -> 143."""
    code, _, signal = text.partition(":")
    if not code.isdigit():
        return None
    return 128 + int(signal) if signal.isdigit() and int(signal) else int(code)


def duration_s(text: str) -> float | None:
    """``[D-][HH:]MM:SS`` (squeue TimeUsed ``1:15``, sacct Elapsed ``00:01:15``) -> seconds."""
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = clock.split(":")
    if not (days.isdigit() and 1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(int(days) * 86400 + seconds)


def iso_utc(text: str, tz: tzinfo | None = None) -> str | None:
    """SLURM's local ``2026-11-24T15:38:20`` -> ``2026-11-24T15:38:20Z`` (None: N/A, Unknown).

    ``tz`` is the zone SLURM printed in; None means this process's local zone.
    """
    if text in _NO_VALUE:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(text: str) -> str:
    return "" if text in _NO_VALUE else text


def expand_task_ids(spec: str) -> list[int]:
    """``0-2`` / ``1,3-5`` / ``0-999%4`` / ``0-10:2`` -> task indices."""
    tasks: list[int] = []
    for part in spec.split("%")[0].split(","):
        bounds, _, step = part.partition(":")
        low, _, high = bounds.partition("-")
        if low.isdigit():
            stop = int(high) if high.isdigit() else int(low)
            tasks += range(int(low), stop + 1, int(step) if step.isdigit() else 1)
    return tasks


# ---------------------------------------------------------------- squeue


@dataclasses.dataclass(frozen=True)
class QueueRow:
    """One squeue line; a pending array's remaining tasks come as one row (``14_[0-2]``)."""

    job_id: str  # 7, 14_2, or 14_[0-2]
    array_job_id: str  # 14 for an array's tasks, else the job id
    task_ids: tuple[int, ...]  # () for a plain job
    observation: JobObservation
    command: str


def parse_squeue(text: str, tz: tzinfo | None = None) -> list[QueueRow]:
    """Rows of ``squeue_argv()`` output; lines that do not parse (foreign oddities) are skipped."""
    rows = []
    for line in text.splitlines():
        row = _parse_squeue_line(line, tz)
        if row is not None:
            rows.append(row)
    return rows


def _parse_squeue_line(line: str, tz: tzinfo | None) -> QueueRow | None:
    line = line.removesuffix("|")
    head = line.split("|", len(SQUEUE_FIELDS) - 2)
    if len(head) != len(SQUEUE_FIELDS) - 1 or "|" not in head[-1]:
        return None
    command, _, name = head[-1].partition("|")
    job_id, raw_id, array_id, task_spec, state_text, reason, status, *rest = head[:-1]
    start, end, used, _dependency = rest
    if not raw_id.isdigit():
        return None
    state = job_state(state_text)
    finished = state in FINISHED_JOB_STATES
    observation = JobObservation(
        job_id=job_id,
        state=state,
        reason=_reason(reason),
        exit_code=exit_code_from_status(status) if finished else None,
        elapsed_s=duration_s(used),
        start=iso_utc(start, tz) if state != states.JOB_PENDING else None,
        end=iso_utc(end, tz) if finished else None,
        name=name,
    )
    is_array = task_spec != "N/A"
    tasks = tuple(expand_task_ids(task_spec)) if is_array else ()
    return QueueRow(job_id, array_id if is_array else job_id, tasks, observation, command)


def observations_by_id(rows: Iterable[QueueRow]) -> dict[str, JobObservation]:
    """Every job and array task by id; a pending ``14_[0-2]`` row yields 14_0, 14_1, 14_2."""
    found: dict[str, JobObservation] = {}
    for row in rows:
        for job_id in _row_ids(row):
            found[job_id] = dataclasses.replace(row.observation, job_id=job_id)
    return found


def _row_ids(row: QueueRow) -> Iterator[str]:
    if "[" in row.job_id:
        yield from (f"{row.array_job_id}_{task}" for task in row.task_ids)
    else:
        yield row.job_id


def ids_by_name(rows: Iterable[QueueRow], registries: dict[str, list[str]]) -> dict[str, str]:
    """Job name -> id. Plain jobs by their SLURM name (newest id wins); array tasks through
    their wrapper's registry (``registries``: wrapper path -> task names)."""
    found: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: int(r.array_job_id) if r.array_job_id.isdigit() else 0):
        task_names = registries.get(row.command)
        if row.task_ids and task_names is not None:
            for task in row.task_ids:
                if task < len(task_names):
                    found[task_names[task]] = f"{row.array_job_id}_{task}"
        elif not row.task_ids:
            found[row.observation.name] = row.job_id
    return found


# ---------------------------------------------------------------- sacct


def parse_sacct(text: str, tz: tzinfo | None = None) -> dict[str, JobObservation]:
    """``sacct_argv()`` rows by JobID (``14_0``, not the raw id); step rows are ignored."""
    found: dict[str, JobObservation] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) != len(SACCT_FIELDS) or "." in fields[0]:
            continue
        job_id, _raw, name, state_text, exit_text, elapsed, start, end, reason = fields
        state = job_state(state_text)
        finished = state in FINISHED_JOB_STATES
        found[job_id] = JobObservation(
            job_id=job_id,
            state=state,
            reason=_sacct_reason(state_text, reason),
            exit_code=exit_code_from_pair(exit_text) if finished else None,
            elapsed_s=duration_s(elapsed),
            start=iso_utc(start, tz),
            end=iso_utc(end, tz) if finished else None,
            name=name,
        )
    return found


def _sacct_reason(state_text: str, reason: str) -> str:
    """The dependency kill reads ``CANCELLED`` (no ``by UID``) with reason ``Dependency`` in
    sacct, where squeue says ``DependencyNeverSatisfied``; a completed dependant also keeps
    ``Dependency``, and a user's scancel reads ``CANCELLED by 0``."""
    if state_text == "CANCELLED" and reason == "Dependency":
        return DEPENDENCY_NEVER_SATISFIED
    return _reason(reason)


def accounting_disabled(stderr: str) -> bool:
    return ACCOUNTING_DISABLED in stderr.lower()


# ---------------------------------------------------------------- jobcomp (accounting off)

_JOBCOMP_KEY = re.compile(r" (?=[A-Za-z]+=)")


def parse_jobcomp_line(line: str) -> dict[str, str]:
    """``Key=Value`` pairs; a value may hold spaces (WorkDir), keys never do."""
    pairs = (item.partition("=") for item in _JOBCOMP_KEY.split(line.strip()))
    return {key: value.strip() for key, sep, value in pairs if sep}


def parse_jobcomp(text: str, tz: tzinfo | None = None) -> dict[str, JobObservation]:
    """Finished jobs from the jobcomp/filetxt log, keyed like squeue (``14_0``); last line wins."""
    found: dict[str, JobObservation] = {}
    for line in text.splitlines():
        record = parse_jobcomp_line(line)
        if "JobId" not in record:
            continue
        job_id = _jobcomp_id(record)
        found[job_id] = JobObservation(
            job_id=job_id,
            state=job_state(record.get("JobState", "")),
            exit_code=exit_code_from_pair(record.get("ExitCode", "")),
            start=iso_utc(record.get("StartTime", ""), tz),
            end=iso_utc(record.get("EndTime", ""), tz),
            name=record.get("Name", ""),
        )
    return found


def _jobcomp_id(record: dict[str, str]) -> str:
    if "ArrayJobId" in record and "ArrayTaskId" in record:
        return f"{record['ArrayJobId']}_{record['ArrayTaskId']}"
    return record["JobId"]


# ---------------------------------------------------------------- status


def status_from_observation(
    obs: JobObservation, log_text: str | None = None
) -> tuple[str | None, str, str]:
    """What the scheduler's word means for runs_status.yaml: (state, reason, message).

    State None means "unknown this cycle: keep the last state" (never a failure).
    ``log_text`` is the job's own output, read for a CUDA out-of-memory.
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


_FAILURES = {
    states.JOB_FAILED: (states.REASON_NON_ZERO_EXIT, "exited with code {code}"),
    states.JOB_TIMEOUT: (states.REASON_TIMEOUT, "hit its time limit after {elapsed}"),
    states.JOB_OUT_OF_MEMORY: (states.REASON_OOM, "ran out of memory (host RAM)"),
    states.JOB_NODE_FAIL: (states.REASON_NODE_FAIL, "its node failed"),
    states.JOB_PREEMPTED: (states.REASON_PREEMPTED, "was preempted"),
}


def _failure(obs: JobObservation, log_text: str | None) -> tuple[str, str, str]:
    if obs.state == states.JOB_FAILED and has_cuda_oom(log_text):
        return states.FAILED, states.REASON_CUDA_OOM, f"job {obs.job_id} ran out of GPU memory"
    reason, template = _FAILURES[obs.state]
    elapsed = "?" if obs.elapsed_s is None else f"{obs.elapsed_s:.0f} s"
    code = "?" if obs.exit_code is None else str(obs.exit_code)
    message = f"job {obs.job_id} " + template.format(code=code, elapsed=elapsed)
    if obs.state == states.JOB_FAILED and obs.reason not in ("", states.REASON_NON_ZERO_EXIT):
        reason, message = obs.reason, f"job {obs.job_id} failed: {obs.reason}"  # BadConstraints
    return states.FAILED, reason, message


def has_cuda_oom(log_text: str | None) -> bool:
    return bool(log_text) and any(marker in (log_text or "") for marker in CUDA_OOM_MARKERS)
