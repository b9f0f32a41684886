"""SlurmExecutor end to end on the real local SLURM (.ci/slurm/start-local-slurm.sh).

Real jobs, real sbatch/squeue/sacct/scancel. The only fakes are runners that
make squeue or sacct fail, because the live cluster cannot be made to fail on
demand without stopping it under the other tests (each such test says so).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pytest

from tunegit.core import states
from tunegit.core.jobplan import header_lines
from tunegit.executors import slurm_parse as sp
from tunegit.executors.base import JobObservation, JobPlan, Poll, Resources, SubmitError
from tunegit.executors.slurm import (
    Completed,
    PartialSubmitError,
    SlurmExecutor,
    run_command,
)
from tunegit.files import tail

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"


def cluster_state() -> str:
    """'' when the cluster answers with a usable node, else why the tests are skipped."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH: start SLURM with .ci/slurm/start-local-slurm.sh"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out: the SLURM controller is not answering"
    node_states = set(done.stdout.split())
    if done.returncode != 0 or not node_states & {"idle", "mixed", "allocated", "alloc"}:
        return f"SLURM is down (sinfo rc={done.returncode}: {done.stdout or done.stderr!r})"
    return ""


_DOWN = cluster_state()
real_slurm = pytest.mark.skipif(bool(_DOWN), reason=_DOWN)
pytestmark = [pytest.mark.slow, pytest.mark.slurm]


class CountingRunner:
    """The real runner, counting calls by program name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls[argv[0]] += 1
        return run_command(argv)


def make_job(tmp_path: Path, name: str, body: str, **kw: object) -> JobPlan:
    workdir = tmp_path / "exp" / name
    workdir.mkdir(parents=True)
    script = workdir / "run.sh"
    job = JobPlan(name, script, workdir, workdir / "job.log", **kw)  # type: ignore[arg-type]
    script.write_text(f"#!/bin/bash\n{header_lines(job)}{body}\n")
    return job


def unique(prefix: str) -> str:
    return f"tg.test.{uuid.uuid4().hex[:8]}.{prefix}"


def wait_until(
    executor: SlurmExecutor,
    ids: Collection[str],
    done: Callable[[JobObservation], bool],
    timeout_s: float = 60.0,
) -> Poll:
    deadline = time.monotonic() + timeout_s
    while True:
        poll = executor.poll(ids)
        if poll.ok and all(i in poll.jobs and done(poll.jobs[i]) for i in ids):
            return poll
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs {sorted(ids)} not done in {timeout_s} s: {poll}")
        time.sleep(0.5)


def finished(obs: JobObservation) -> bool:
    return obs.state in sp.FINISHED_JOB_STATES


def squeue_ids(array_id: str) -> set[str]:
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", array_id, "-o", "%i"], capture_output=True, text=True
    )
    return set(done.stdout.split())


@real_slurm
def test_equal_resources_go_as_one_array(tmp_path: Path) -> None:
    jobs = [make_job(tmp_path, unique(s), 'echo "in $(basename "$PWD")"') for s in "ab"]
    ids = SlurmExecutor().submit(jobs)
    array_id = ids[jobs[0].name].split("_")[0]
    assert ids == {jobs[0].name: f"{array_id}_0", jobs[1].name: f"{array_id}_1"}
    poll = wait_until(SlurmExecutor(), ids.values(), finished)
    assert {poll.jobs[i].state for i in ids.values()} == {states.JOB_COMPLETED}
    assert squeue_ids(array_id) == {f"{array_id}_0", f"{array_id}_1"}
    for job in jobs:
        assert job.log.read_text() == f"in {job.name}\n"


@real_slurm
def test_dependants_start_after_their_parent(tmp_path: Path) -> None:
    parent = make_job(tmp_path, unique("parent"), "sleep 2; date +%s.%N > ../parent.end")
    child = make_job(tmp_path, unique("child"), "date +%s.%N > ../child.start",
                     after=(parent.name,))  # fmt: skip
    executor = SlurmExecutor()
    ids = executor.submit([parent, child])
    later = make_job(tmp_path, unique("later"), "true", after=(parent.name,))
    ids |= executor.submit([later], known=ids)
    poll = wait_until(executor, ids.values(), finished)
    assert {poll.jobs[i].state for i in ids.values()} == {states.JOB_COMPLETED}
    parent_end = float((tmp_path / "exp" / "parent.end").read_text())
    assert float((tmp_path / "exp" / "child.start").read_text()) >= parent_end


@real_slurm
def test_failed_parent_blocks_its_dependant(tmp_path: Path) -> None:
    parent = make_job(tmp_path, unique("parent"), "echo failing; exit 3")
    child = make_job(tmp_path, unique("child"), "echo never", after=(parent.name,))
    executor = SlurmExecutor()
    ids = executor.submit([parent, child])
    poll = wait_until(executor, ids.values(), finished)
    parent_obs, child_obs = poll.jobs[ids[parent.name]], poll.jobs[ids[child.name]]
    assert sp.status_from_observation(parent_obs, tail(parent.log)) == (
        states.FAILED,
        states.REASON_NON_ZERO_EXIT,
        f"job {ids[parent.name]} exited with code 3: failing",  # its log's last line
    )
    assert sp.status_from_observation(child_obs, tail(child.log))[:2] == (
        states.BLOCKED,
        states.REASON_DEPENDENCY_FAILED,
    )
    assert not child.log.exists()


@real_slurm
def test_scancel_ends_cancelled(tmp_path: Path) -> None:
    job = make_job(tmp_path, unique("sleeper"), "sleep 120")
    executor = SlurmExecutor()
    job_id = executor.submit([job])[job.name]
    wait_until(executor, [job_id], lambda obs: obs.state == states.JOB_RUNNING)
    executor.cancel([job_id, "99999999"])  # an unknown id is ignored
    poll = wait_until(executor, [job_id], finished)
    assert sp.status_from_observation(poll.jobs[job_id])[:2] == (
        states.CANCELLED,
        states.REASON_CANCELLED,
    )


@real_slurm
def test_time_limit_is_a_failure_with_reason(tmp_path: Path) -> None:
    job = make_job(tmp_path, unique("slow"), "sleep 300", resources=Resources(time_minutes=1))
    executor = SlurmExecutor()
    job_id = executor.submit([job])[job.name]
    poll = wait_until(executor, [job_id], finished, timeout_s=150)
    state, reason, _ = sp.status_from_observation(poll.jobs[job_id], tail(job.log))
    assert (state, reason) == (states.FAILED, states.REASON_TIMEOUT)
    elapsed = poll.jobs[job_id].elapsed_s
    assert elapsed is not None and elapsed >= 60


@real_slurm
def test_a_restarted_caller_finds_its_jobs_by_name(tmp_path: Path) -> None:
    jobs = [make_job(tmp_path, unique(s), "sleep 1") for s in "abc"]
    evaluation = make_job(tmp_path, unique("eval"), "true", after=(jobs[0].name,))
    ids = SlurmExecutor().submit([*jobs, evaluation])
    assert ids[jobs[2].name].endswith("_2")
    names = [*ids, unique("never-submitted")]
    poll = SlurmExecutor().poll((), names=names)  # a fresh instance: nothing in memory
    assert poll.ok
    assert dict(poll.names) == ids
    # What each found job runs, to tell this experiment's jobs from a namesake's: the array's
    # tasks their wrapper (in the experiment's .tunegit/), the dependant its own script.
    wrapper = sp.plan_array(jobs).wrapper
    assert dict(poll.origins) == {**{job.name: str(wrapper) for job in jobs},
                                  evaluation.name: str(evaluation.script)}


@real_slurm
def test_poll_makes_one_squeue_and_at_most_one_sacct_call(tmp_path: Path) -> None:
    jobs = [make_job(tmp_path, unique(f"n{i}"), "sleep 30") for i in range(6)]
    jobs.append(make_job(tmp_path, unique("big"), "sleep 30", resources=Resources(cpus=2)))
    ids = SlurmExecutor().submit(jobs)
    runner = CountingRunner()
    executor = SlurmExecutor(runner)
    live = list(ids.values())
    forgotten = [str(99999990 + i) for i in range(20)]  # ids no squeue lists: sacct needed
    try:
        executor.poll(live[:1])
        assert runner.calls == {"squeue": 1}
        executor.poll(live, names=list(ids))
        assert runner.calls == {"squeue": 2}
        poll = executor.poll(live + forgotten, names=list(ids))
        assert runner.calls == {"squeue": 3, "sacct": 1}
        assert poll.ok and set(poll.jobs) == set(live) and dict(poll.names) == ids
    finally:
        executor.cancel(live)
    assert runner.calls["scancel"] == 1


@real_slurm
def test_refused_submit_raises_with_slurm_text(tmp_path: Path) -> None:
    bad = make_job(tmp_path, unique("bad"), "true", resources=Resources(partition="nosuch"))
    with pytest.raises(SubmitError) as raised:
        SlurmExecutor().submit([bad])
    assert str(raised.value) == (
        f"{bad.name}: invalid partition specified: nosuch; "
        "Batch job submission failed: Invalid partition name specified"
    )
    assert not raised.value.transient  # for good: its step fails, saying why
    good = make_job(tmp_path, unique("good"), "true")
    with pytest.raises(PartialSubmitError) as partial:
        SlurmExecutor().submit([good, bad])
    assert list(partial.value.submitted) == [good.name]
    assert str(partial.value) == str(raised.value) and not partial.value.transient


# ---------------------------------------------------------------- faults (fake runners)


def failing(program: str, stderr: str) -> Callable[[Sequence[str]], Completed]:
    """The real runner, except ``program`` fails as given. Fake because the shared local
    cluster cannot be taken down or have accounting switched off in the middle of a run."""

    def runner(argv: Sequence[str]) -> Completed:
        if argv[0] == program:
            return subprocess.CompletedProcess(list(argv), 1, "", stderr)
        return run_command(argv)

    return runner


@real_slurm
def test_squeue_down_means_unknown_not_failed() -> None:
    stderr = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    poll = SlurmExecutor(failing("squeue", stderr)).poll(["1", "2"], names=["tg.x"])
    assert poll == Poll(jobs={}, names={}, ok=False, error=f"squeue rc=1: {stderr.strip()}")


@real_slurm
def test_accounting_disabled_falls_back_to_the_jobcomp_log(tmp_path: Path) -> None:
    recorded = (FIXTURES / "jobcomp.txt").read_text().splitlines()
    line = next(line for line in recorded if " Name=tg.fix.failed " in line)
    jobcomp = tmp_path / "jobcomp.log"  # the recorded line, under an id no cluster has yet
    jobcomp.write_text(f"JobId=99999934 {line.split(' ', 1)[1]}\n")
    stderr = (FIXTURES / "sacct_accounting_disabled.stderr").read_text()
    executor = SlurmExecutor(failing("sacct", stderr), jobcomp_log=jobcomp)
    poll = executor.poll(["99999934", "99999998"])
    assert (poll.ok, poll.error, list(poll.jobs)) == (True, "", ["99999934"])
    assert (poll.jobs["99999934"].state, poll.jobs["99999934"].exit_code) == ("FAILED", 3)
    assert poll.jobs["99999934"].name == "tg.fix.failed"
    assert poll.lost == {"99999998": f"job 99999998 is known neither to squeue nor to the "
                                     f"jobcomp log {jobcomp}"}


@real_slurm
def test_sacct_error_without_fallback_leaves_jobs_unknown() -> None:
    stderr = "sacct: error: slurmdbd: Connection refused\n"
    poll = SlurmExecutor(failing("sacct", stderr)).poll(["99999977"])
    assert (poll.ok, dict(poll.jobs)) == (True, {})
    assert poll.error == f"sacct rc=1: {stderr.strip()}"
    assert poll.lost == {}  # sacct could not be asked: unknown this cycle, not lost


@real_slurm
def test_an_id_neither_squeue_nor_sacct_knows_is_reported_lost() -> None:
    poll = SlurmExecutor().poll(["99999961"])
    assert (poll.ok, poll.error, dict(poll.jobs)) == (True, "", {})
    assert poll.lost == {"99999961": "job 99999961 is known neither to squeue nor to sacct"}
