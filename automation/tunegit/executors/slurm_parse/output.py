"""Parsers for what SLURM prints back (squeue, sacct, the jobcomp log), pure.

Each parser is tested on output recorded from a real SLURM 22.05 (``tests/fixtures/slurm/``);
a line that does not parse (a foreign job's oddity) is skipped, never read as a failure.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo

from tunegit.core import states
from tunegit.core.observe import DEPENDENCY_NEVER_SATISFIED, FINISHED_JOB_STATES, JobObservation
from tunegit.core.stamps import TIME_FORMAT
from tunegit.executors.slurm_parse.argv import SACCT_FIELDS, SQUEUE_FIELDS

ACCOUNTING_DISABLED = "accounting storage is disabled"

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
_NO_VALUE = frozenset({"", "N/A", "NONE", "None", "Unknown", "(null)", "INVALID"})


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
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


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
        for job_id in row_ids(row):
            found[job_id] = dataclasses.replace(row.observation, job_id=job_id)
    return found


def row_ids(row: QueueRow) -> Iterator[str]:
    """The job ids one squeue row stands for (a pending array's remaining tasks: each)."""
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


# sbatch's words for a job refused for now: a limit on jobs queued or running (QOS, association),
# a controller too busy to answer. The same job goes in once the limit frees: submit it later.
REFUSED_FOR_NOW = ("Job violates accounting/QOS policy", "MaxSubmitJob", "MaxJobs",
                   "Socket timed out", "Unable to contact slurm controller",
                   "temporarily unable", "Resource temporarily unavailable",
                   "Slurm controller not responding")
# ... and for a job that never goes in as it is: a name the cluster does not have, a request no
# node or per-job limit allows. These win over the above ("PerJob": e.g. QOSMaxCpuPerJobLimit).
REFUSED_FOR_GOOD = ("Invalid partition", "Invalid account", "Invalid qos", "Invalid feature",
                    "Invalid generic resource", "Requested node configuration is not available",
                    "Requested time limit is invalid", "not permitted to use this partition",
                    "PerJob")


def refused_for_now(stderr: str) -> bool:
    """sbatch failed in a way that passes (a limit, a busy controller): submit it again later.
    Anything else, an unknown refusal included, is for good: its step fails, saying why."""
    if any(marker in stderr for marker in REFUSED_FOR_GOOD):
        return False
    return any(marker in stderr for marker in REFUSED_FOR_NOW)


def one_line(stderr: str) -> str:
    """sbatch's error lines as one line, without the repeated ``sbatch: error:`` prefix."""
    lines = (line.strip().removeprefix("sbatch: error:").strip() for line in stderr.splitlines())
    return "; ".join(line for line in lines if line)


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
