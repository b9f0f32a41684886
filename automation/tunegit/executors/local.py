"""The local executor: jobs are detached processes on this machine.

Each job gets a state directory ``<state_dir>/<job_id>/`` holding its name,
script, pid, start and end times and exit code, so a job outlives the tunegit process
that started it and any later process (`tunegit run` again, `tunegit reconcile --once`)
can observe it, find it again by its deterministic name, or cancel it. Dependencies are
not enforced here (``supports_dependencies = False``): the reconcile loop submits an
evaluation only once its checkpoint exists.

A launch is recorded before its process starts: the state directory (name, script, launch
time) appears whole by one rename, then the by-name index points at it, then the process
starts, and its wrapper's first act records its pid. A launcher killed at any point leaves
either nothing (the job is started again) or a record a restart finds by name (never a
second copy). The pid file also holds the process's start time and session, read from
``/proc``: a pid the kernel has since given to another process is not taken for the job,
and never signalled.

As a registered backend (``create``, ``poll_backoff``, ``wake_files``): job state lives
under the site's output_dir, polls are every 2 s, and the wrapper's last act (moving in
``rc``) wakes the watcher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from tunegit.core.stamps import parse_stamp
from tunegit.core.states import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_RUNNING,
    REASON_CANCELLED,
    REASON_LAUNCHING,
    REASON_NON_ZERO_EXIT,
    REASON_PROCESS_LOST,
)
from tunegit.executors.base import (
    Backoff,
    JobObservation,
    JobPlan,
    Poll,
    SitePaths,
    SubmitError,
    WakeFile,
    job_environment,
)
from tunegit.files import utc_now
from tunegit.spec.site import Site

JOBS_DIR = ".tunegit-jobs"  # under the site's output_dir: one directory per job
JOB_END_FILE = "rc"  # the wrapper moves it in when the job ends
POLL_S = 2.0  # a poll reads a few small files: cheap
# A launch recorded this long ago whose wrapper never recorded its pid never started (its
# launcher died between the record and the start). Starting bash takes milliseconds; a
# minute leaves room for a machine under heavy load.
LAUNCH_GRACE_S = 60.0

# The wrapper leads the job's process group and session (start_new_session). Its first act
# records "<pid> <start time> <session>" (fields 22 and 6 of /proc/<pid>/stat) atomically; a
# job cancelled before that runs nothing. It records the exit code atomically at the end.
WRAPPER = (
    'read -r stat < /proc/$$/stat; f=(${stat##*") "}); '
    'echo "$$ ${f[19]} ${f[3]}" > "$1/pid.tmp" && mv "$1/pid.tmp" "$1/pid"; '
    'if [ -e "$1/cancelled" ]; then rc=143; else '
    'date -u +%Y-%m-%dT%H:%M:%SZ > "$1/started"; '
    'bash "$2"; rc=$?; fi; '
    'date -u +%Y-%m-%dT%H:%M:%SZ > "$1/ended"; '
    'echo $rc > "$1/rc.tmp" && mv "$1/rc.tmp" "$1/rc"; exit $rc'
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _write(path: Path, text: str) -> None:
    """Atomically: a reader sees the whole file or none."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class ProcessId:
    """A process as recorded at its start: pid, start time (clock ticks after boot), session.

    A pid alone names whichever process has it now; with the start time it names one process
    for ever. Records from before the start time was kept have only the pid."""

    pid: int
    start: str = ""
    session: str = ""

    @classmethod
    def parse(cls, text: str | None) -> ProcessId | None:
        fields = (text or "").split()
        if not fields or not fields[0].isdigit():
            return None
        return cls(int(fields[0]), *fields[1:3])


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first); None: no such
    process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 19 else None


def _is(proc: ProcessId, fields: list[str]) -> bool:
    """Is the process with these /proc fields the one recorded (start time and session)?"""
    return ((not proc.start or fields[19] == proc.start)
            and (not proc.session or fields[3] == proc.session))


def _alive(proc: ProcessId) -> bool:
    fields = _proc_stat(proc.pid)
    return fields is not None and fields[0] not in ("Z", "X") and _is(proc, fields)


def _may_signal(proc: ProcessId) -> bool:
    """May the job's process group be signalled? Not when its pid now belongs to another
    process. When no process has the pid, the group (if any process is left in it) is the
    job's: the kernel does not give out a pid that is still a process group's id."""
    fields = _proc_stat(proc.pid)
    return fields is None or _is(proc, fields)


def _seconds(start: str | None, end: str | None) -> float | None:
    """From ``start`` to ``end`` (None: now), in seconds."""
    a = parse_stamp(start)
    b = parse_stamp(end) if end else dt.datetime.now(dt.UTC)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


class LocalExecutor:
    name = "local"
    supports_dependencies = False

    def __init__(self, state_dir: Path, env: Mapping[str, str] | None = None):
        self.state_dir = state_dir
        self.env = dict(env) if env is not None else job_environment()

    def submit(
        self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        ids: dict[str, str] = {}
        for job in jobs:
            try:
                ids[job.name] = self._start(job)
            except OSError as exc:  # a full disk, a read-only output_dir: nothing half-made
                where = f" ({exc.filename})" if exc.filename else ""
                raise SubmitError(job.name, f"could not start the job: "
                                  f"{exc.strerror or exc}{where}", submitted=ids) from None
        return ids

    def _start(self, job: JobPlan) -> str:
        job_id = self._record(job)
        try:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "ab") as log:
                subprocess.Popen(
                    ["bash", "-c", WRAPPER, "tunegit-job", str(self.state_dir / job_id),
                     str(job.script)],
                    cwd=job.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    start_new_session=True,
                )
        except OSError:
            self._forget(job, job_id)
            raise
        return job_id

    def _forget(self, job: JobPlan, job_id: str) -> None:
        """Undo a launch record whose process could not start (its index entry first)."""
        index = self.state_dir / "by-name" / job.name
        if _read(index) == job_id:
            index.unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / job_id, ignore_errors=True)

    def _record(self, job: JobPlan) -> str:
        """The launch, before anything starts: the job's directory appears whole (one
        rename), then the by-name index points at it (one rename)."""
        job_id = f"local-{uuid.uuid4().hex[:10]}"
        draft = self.state_dir / f".{job_id}.tmp"
        try:
            draft.mkdir(parents=True)
            for key, value in (("name", job.name), ("log", str(job.log)),
                               ("script", str(job.script)), ("launched", utc_now())):
                (draft / key).write_text(value + "\n", encoding="utf-8")
            os.replace(draft, self.state_dir / job_id)
            index = self.state_dir / "by-name"
            index.mkdir(parents=True, exist_ok=True)
            _write(index / job.name, job_id + "\n")
        except OSError:
            shutil.rmtree(draft, ignore_errors=True)
            self._forget(job, job_id)
            raise
        return job_id

    def observe(self, job_id: str) -> JobObservation | None:
        state = self.state_dir / job_id
        if not state.is_dir():
            return None
        name = _read(state / "name") or ""
        start, end = _read(state / "started"), _read(state / "ended")
        rc_text = _read(state / "rc")
        if (state / "cancelled").exists():
            return JobObservation(
                job_id,
                JOB_CANCELLED,
                REASON_CANCELLED,
                None,
                _seconds(start, end),
                start,
                end,
                name,
            )
        if rc_text is not None:
            rc = int(rc_text) if rc_text.lstrip("-").isdigit() else -1
            state_name = JOB_COMPLETED if rc == 0 else JOB_FAILED
            return JobObservation(
                job_id,
                state_name,
                "" if rc == 0 else REASON_NON_ZERO_EXIT,
                rc,
                _seconds(start, end),
                start,
                end,
                name,
            )
        proc = ProcessId.parse(_read(state / "pid"))
        if proc is None and self._launching(state):
            return JobObservation(job_id, JOB_PENDING, REASON_LAUNCHING, name=name)
        if proc is not None and _alive(proc):
            return JobObservation(
                job_id, JOB_RUNNING, "", None, _seconds(start, None), start, None, name
            )
        # The job's wrapper is gone without an exit code (kill -9, a reboot; its pid may now
        # be another process's), or it never started (its launcher died first).
        return JobObservation(
            job_id, JOB_FAILED, REASON_PROCESS_LOST, None, _seconds(start, end), start, end, name
        )

    @staticmethod
    def _launching(state: Path) -> bool:
        """Recorded, and not yet long enough ago for its wrapper to have surely started."""
        age = _seconds(_read(state / "launched"), None)
        return age is not None and age < LAUNCH_GRACE_S

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        jobs, lost = {}, {}
        for job_id in job_ids:
            obs = self.observe(job_id)
            if obs is not None:
                jobs[job_id] = obs
            else:
                lost[job_id] = (f"job {job_id} has no directory in {self.state_dir} "
                                "(its outputs were deleted?)")
        found, origins = {}, {}
        for name in names:
            known = _read(self.state_dir / "by-name" / name)
            if known:
                found[name] = known
                script = _read(self.state_dir / known / "script")
                if script:
                    origins[name] = script
        return Poll(jobs, found, origins=origins, lost=lost)

    def cancel(self, job_ids: Collection[str]) -> None:
        """Mark each job cancelled (a job not started yet then runs nothing) and SIGTERM its
        process group, unless its pid now belongs to another process."""
        for job_id in job_ids:
            state = self.state_dir / job_id
            if not state.is_dir() or (state / "rc").exists():
                continue
            _write(state / "cancelled", utc_now() + "\n")
            proc = ProcessId.parse(_read(state / "pid"))
            if proc is not None and _may_signal(proc):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)


# --- the backend: what the loop knows of this executor ----------------------------------------

def jobs_dir(site: Site, paths: SitePaths) -> Path:
    return paths.site_dir(site.output_dir) / JOBS_DIR


def create(site: Site, paths: SitePaths) -> LocalExecutor:
    return LocalExecutor(jobs_dir(site, paths))


def poll_backoff(site: Site) -> Backoff:
    return Backoff(base_s=POLL_S, jitter=0.0)


def wake_files(site: Site, paths: SitePaths) -> tuple[WakeFile, ...]:
    return (WakeFile(jobs_dir(site, paths), JOB_END_FILE),)


def jobs_run_here(site: Site) -> bool:
    """Always: the jobs are processes on this machine."""
    return True
