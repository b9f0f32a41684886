"""The local executor: jobs are detached processes on this machine.

Each job gets a state directory ``<state_dir>/<job_id>/`` holding its name,
pid, start and end times and exit code, written by a small shell wrapper, so a
job outlives the tunegit process that started it and any later process
(`tunegit run` again, `tunegit reconcile --once`) can observe it, find it again
by its deterministic name, or cancel it. Dependencies are not enforced here
(``supports_dependencies = False``): the reconcile loop submits an evaluation
only once its checkpoint exists.

As a registered backend (``create``, ``poll_backoff``, ``wake_files``): job state lives
under the site's output_dir, polls are every 2 s, and the wrapper's last act (moving in
``rc``) wakes the watcher.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from tunegit.core.states import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_RUNNING,
    REASON_CANCELLED,
    REASON_NON_ZERO_EXIT,
)
from tunegit.executors.base import (
    Backoff,
    JobObservation,
    JobPlan,
    Poll,
    SitePaths,
    WakeFile,
    job_environment,
)
from tunegit.files import utc_now
from tunegit.spec.site import Site

JOBS_DIR = ".tunegit-jobs"  # under the site's output_dir: one directory per job
JOB_END_FILE = "rc"  # the wrapper moves it in when the job ends
POLL_S = 2.0  # a poll reads a few small files: cheap

# The wrapper records the exit code atomically; `exec` keeps the job's process group.
WRAPPER = (
    'date -u +%Y-%m-%dT%H:%M:%SZ > "$1/started"; '
    'bash "$2"; rc=$?; '
    'date -u +%Y-%m-%dT%H:%M:%SZ > "$1/ended"; '
    'echo $rc > "$1/rc.tmp" && mv "$1/rc.tmp" "$1/rc"; exit $rc'
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        a = dt.datetime.strptime(start, fmt)
        b = dt.datetime.strptime(end, fmt) if end else dt.datetime.utcnow()
    except ValueError:
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
        return {job.name: self._start(job) for job in jobs}

    def _start(self, job: JobPlan) -> str:
        job_id = f"local-{uuid.uuid4().hex[:10]}"
        state = self.state_dir / job_id
        state.mkdir(parents=True)
        (state / "name").write_text(job.name + "\n", encoding="utf-8")
        (state / "log").write_text(str(job.log) + "\n", encoding="utf-8")
        (state / "script").write_text(str(job.script) + "\n", encoding="utf-8")
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "ab") as log:
            proc = subprocess.Popen(
                ["bash", "-c", WRAPPER, "tunegit-job", str(state), str(job.script)],
                cwd=job.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        (state / "pid").write_text(f"{proc.pid}\n", encoding="utf-8")
        self._index(job.name, job_id)
        return job_id

    def _index(self, name: str, job_id: str) -> None:
        index = self.state_dir / "by-name"
        index.mkdir(parents=True, exist_ok=True)
        (index / name).write_text(job_id + "\n", encoding="utf-8")

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
        pid_text = _read(state / "pid")
        if pid_text and _alive(int(pid_text)):
            return JobObservation(
                job_id, JOB_RUNNING, "", None, _seconds(start, None), start, None, name
            )
        # The job's wrapper is gone without an exit code: killed (e.g. kill -9, machine reboot).
        return JobObservation(
            job_id, JOB_FAILED, "ProcessLost", None, _seconds(start, end), start, end, name
        )

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        jobs = {}
        for job_id in job_ids:
            obs = self.observe(job_id)
            if obs is not None:
                jobs[job_id] = obs
        found, origins = {}, {}
        for name in names:
            known = _read(self.state_dir / "by-name" / name)
            if known:
                found[name] = known
                script = _read(self.state_dir / known / "script")
                if script:
                    origins[name] = script
        return Poll(jobs, found, origins=origins)

    def cancel(self, job_ids: Collection[str]) -> None:
        for job_id in job_ids:
            state = self.state_dir / job_id
            pid_text = _read(state / "pid")
            if not pid_text or (state / "rc").exists():
                continue
            (state / "cancelled").write_text(utc_now() + "\n", encoding="utf-8")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid_text), signal.SIGTERM)


# --- the backend: what the loop knows of this executor ----------------------------------------

def jobs_dir(site: Site, paths: SitePaths) -> Path:
    return paths.site_dir(site.output_dir) / JOBS_DIR


def create(site: Site, paths: SitePaths) -> LocalExecutor:
    return LocalExecutor(jobs_dir(site, paths))


def poll_backoff(site: Site) -> Backoff:
    return Backoff(base_s=POLL_S, jitter=0.0)


def wake_files(site: Site, paths: SitePaths) -> tuple[WakeFile, ...]:
    return (WakeFile(jobs_dir(site, paths), JOB_END_FILE),)
