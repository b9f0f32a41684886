"""The pure SLURM parsers and mappers, on output recorded from a real SLURM 22.05.

Fixtures: tests/fixtures/slurm/ (README.md there says how each was produced;
the *_handwritten files are the states this cluster cannot produce on demand).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import UTC, timezone
from pathlib import Path

import pytest

from tunegit.core import states
from tunegit.core.jobplan import header_lines, header_options, job_options
from tunegit.executors import slurm_parse as sp
from tunegit.executors.base import JobObservation, JobPlan, Resources, SubmitError
from tunegit.executors.slurm import (
    Backoff,
    dependency_order,
    independent_groups,
    vanished_tasks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
LOGS = FIXTURES.parent / "logs"
UTC = UTC


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def recorded_ids() -> dict[str, str]:
    pairs = (line.split("=") for line in fixture("job_ids.txt").split())
    return {role: job_id for role, job_id in pairs}


IDS = recorded_ids()


def squeue(name: str) -> dict[str, JobObservation]:
    return sp.observations_by_id(sp.parse_squeue(fixture(name), UTC))


def task(role: str, index: int) -> str:
    return f"{IDS[role]}_{index}"


# ------------------------------------------------------------------ squeue

# (fixture, job id, state, reason, exit code, elapsed s, start, end)
SQUEUE_ROWS = [
    ("squeue_submitted.txt", IDS["ok"], "PENDING", "", None, 0.0, None, None),
    ("squeue_submitted.txt", IDS["failed"], "PENDING", "Priority", None, 0.0, None, None),
    ("squeue_submitted.txt", IDS["after_ok"], "PENDING", "Dependency", None, 0.0, None, None),
    ("squeue_submitted.txt", IDS["later"], "PENDING", "BeginTime", None, 0.0, None, None),
    ("squeue_submitted.txt", IDS["held"], "PENDING", "JobHeldUser", None, 0.0, None, None),
    ("squeue_submitted.txt", task("array", 0), "PENDING", "", None, 0.0, None, None),
    ("squeue_submitted.txt", task("array", 2), "PENDING", "", None, 0.0, None, None),
    ("squeue_running.txt", IDS["cancel"], "RUNNING", "", None, 2.0, "2026-11-24T15:40:16Z", None),
    ("squeue_running.txt", IDS["timeout"], "RUNNING", "", None, 2.0, "2026-11-24T15:40:16Z",
     None),
    ("squeue_final.txt", IDS["ok"], "COMPLETED", "", 0, 0.0, "2026-11-24T15:40:16Z",
     "2026-11-24T15:40:16Z"),
    ("squeue_final.txt", IDS["failed"], "FAILED", "NonZeroExitCode", 3, 0.0,
     "2026-11-24T15:40:16Z", "2026-11-24T15:40:16Z"),
    ("squeue_final.txt", IDS["cudaoom"], "FAILED", "NonZeroExitCode", 1, 0.0,
     "2026-11-24T15:40:16Z", "2026-11-24T15:40:16Z"),
    ("squeue_final.txt", IDS["blocked"], "CANCELLED", "DependencyNeverSatisfied", 0, 0.0,
     "2026-11-24T15:40:16Z", "2026-11-24T15:40:16Z"),
    ("squeue_final.txt", IDS["cancel"], "CANCELLED", "", 143, 2.0, "2026-11-24T15:40:16Z",
     "2026-11-24T15:40:18Z"),
    ("squeue_final.txt", IDS["timeout"], "TIMEOUT", "TimeLimit", 143, 79.0,
     "2026-11-24T15:40:16Z", "2026-11-24T15:41:35Z"),
    ("squeue_final.txt", task("array", 1), "COMPLETED", "", 0, 2.0, "2026-11-24T15:40:16Z",
     "2026-11-24T15:40:18Z"),
    ("squeue_handwritten.txt", "90", "OUT_OF_MEMORY", "OutOfMemory", 137, 300.0,
     "2026-11-24T15:40:16Z", "2026-11-24T15:45:16Z"),
    ("squeue_handwritten.txt", "91", "NODE_FAIL", "NodeDown", 0, 3600.0, "2026-11-24T15:40:16Z",
     "2026-11-24T16:40:16Z"),
    ("squeue_handwritten.txt", "92", "PREEMPTED", "", 143, 600.0, "2026-11-24T15:40:16Z",
     "2026-11-24T15:50:16Z"),
    ("squeue_handwritten.txt", "94", "COMPLETING", "", None, 93784.0, "2026-11-24T15:40:16Z",
     None),
    ("squeue_handwritten.txt", "95", "PENDING", "DependencyNeverSatisfied", None, 0.0, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "job_id", "state", "reason", "exit_code", "elapsed", "start", "end"), SQUEUE_ROWS
)
def test_squeue_observation(
    name: str,
    job_id: str,
    state: str,
    reason: str,
    exit_code: int | None,
    elapsed: float | None,
    start: str | None,
    end: str | None,
) -> None:
    obs = squeue(name)[job_id]
    assert (obs.job_id, obs.state, obs.reason, obs.exit_code) == (job_id, state, reason, exit_code)
    assert (obs.elapsed_s, obs.start, obs.end) == (elapsed, start, end)


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        ("squeue_submitted.txt", [task("array", i) for i in range(3)]),
        ("squeue_final.txt", [task("array", i) for i in range(3)]),
        ("squeue_handwritten.txt", ["93_0", "93_3", "93_4", "93_5"]),
    ],
)
def test_array_rows_give_one_observation_per_task(name: str, ids: list[str]) -> None:
    found = squeue(name)
    array_id = ids[0].split("_")[0]
    assert sorted(i for i in found if i.startswith(f"{array_id}_")) == sorted(ids)
    assert f"{array_id}_[0-2]" not in found


def test_squeue_row_keeps_names_and_commands() -> None:
    rows = {row.job_id: row for row in sp.parse_squeue(fixture("squeue_final.txt"), UTC)}
    assert rows[IDS["ok"]].observation.name == "tg.fix.ok"
    assert rows[IDS["ok"]].command == "(null)"
    array_row = rows[task("array", 0)]
    assert array_row.array_job_id == IDS["array"]
    assert array_row.task_ids == (0,)
    assert array_row.command.endswith("/array.sh")
    assert len(rows) == 12


def test_squeue_skips_lines_that_do_not_parse() -> None:
    text = "garbage\n" + "only|three|fields|\n" + fixture("squeue_final.txt")
    assert len(sp.parse_squeue(text, UTC)) == 12


def test_squeue_argv_lists_all_own_jobs_in_one_call() -> None:
    argv = sp.squeue_argv()
    assert argv[:5] == ["squeue", "--me", "-h", "-t", "all"]
    assert argv[5:] == ["-O", sp.SQUEUE_FORMAT]
    assert sp.SQUEUE_FORMAT.startswith("JobArrayID:|,JobID:|,") and sp.SQUEUE_FORMAT.endswith(
        "Command:|,Name:|"
    )


# ------------------------------------------------------------------ sacct

# (fixture, job id, state, reason, exit code, elapsed, name)
SACCT_ROWS = [
    ("sacct_final.txt", IDS["ok"], "COMPLETED", "", 0, 0.0, "tg.fix.ok"),
    ("sacct_final.txt", IDS["failed"], "FAILED", "", 3, 0.0, "tg.fix.failed"),
    ("sacct_final.txt", IDS["after_ok"], "COMPLETED", "Dependency", 0, 0.0, "tg.fix.after_ok"),
    ("sacct_final.txt", IDS["blocked"], "CANCELLED", "DependencyNeverSatisfied", 0, 0.0,
     "tg.fix.blocked"),
    ("sacct_final.txt", IDS["cancel"], "CANCELLED", "", 0, 2.0, "tg.fix.cancel"),
    ("sacct_final.txt", IDS["timeout"], "TIMEOUT", "", 0, 79.0, "tg.fix.timeout"),
    ("sacct_final.txt", IDS["held"], "PENDING", "JobHeldUser", None, 0.0, "tg.fix.held"),
    ("sacct_final.txt", task("array", 0), "COMPLETED", "", 0, 2.0, "tg.fix.array"),
    ("sacct_final_steps.txt", IDS["cancel"], "CANCELLED", "", 0, 2.0, "tg.fix.cancel"),
    ("sacct_running.txt", IDS["cancel"], "PENDING", "", None, 2.0, "allocation"),
    ("sacct_running.txt", IDS["blocked"], "CANCELLED", "", 0, 0.0, "allocation"),
    ("sacct_handwritten.txt", "90", "OUT_OF_MEMORY", "", 137, 300.0, "tg.hand.oom"),
    ("sacct_handwritten.txt", "91", "NODE_FAIL", "", 0, 3600.0, "tg.hand.node_fail"),
    ("sacct_handwritten.txt", "92", "PREEMPTED", "", 0, 600.0, "tg.hand.preempted"),
    ("sacct_handwritten.txt", "96", "UNKNOWN", "", None, 0.0, "tg.hand.future"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "job_id", "state", "reason", "exit_code", "elapsed", "job_name"), SACCT_ROWS
)
def test_sacct_observation(
    name: str,
    job_id: str,
    state: str,
    reason: str,
    exit_code: int | None,
    elapsed: float,
    job_name: str,
) -> None:
    obs = sp.parse_sacct(fixture(name), UTC)[job_id]
    assert (obs.state, obs.reason, obs.exit_code) == (state, reason, exit_code)
    assert (obs.elapsed_s, obs.name) == (elapsed, job_name)


def test_sacct_keys_by_job_id_not_raw_id_and_skips_steps() -> None:
    final = sp.parse_sacct(fixture("sacct_final.txt"), UTC)
    with_steps = sp.parse_sacct(fixture("sacct_final_steps.txt"), UTC)
    assert final.keys() == with_steps.keys()
    assert len(final) == 12
    assert not any("." in job_id for job_id in with_steps)
    assert "43" not in final  # the raw id of task 0
    assert final[task("array", 0)].start == "2026-11-24T15:40:16Z"
    assert final[IDS["held"]].start is None


def test_sacct_lagging_array_is_one_row() -> None:
    lagging = sp.parse_sacct(fixture("sacct_running.txt"), UTC)
    assert IDS["array"] in lagging
    assert task("array", 0) not in lagging


def test_accounting_disabled_is_recognised() -> None:
    assert sp.accounting_disabled(fixture("sacct_accounting_disabled.stderr"))
    assert not sp.accounting_disabled(fixture("squeue_unknown_id.stderr"))


@pytest.mark.parametrize(("recorded", "for_now"), [
    ("sbatch_error_qos_submit_limit.stderr", True),  # MaxSubmitJobsPerUser: once one ends
    ("sbatch_error_partition.stderr", False), ("sbatch_error_account.stderr", False),
    ("sbatch_error_qos.stderr", False), ("sbatch_error_feature.stderr", False),
    ("sbatch_error_gres.stderr", False), ("sbatch_error_mem.stderr", False)])
def test_a_refusal_is_for_now_only_for_limits_that_pass(recorded: str, for_now: bool) -> None:
    assert sp.refused_for_now(fixture(recorded)) is for_now


def test_a_refusal_for_a_per_job_limit_or_an_unknown_one_is_for_good() -> None:
    # Words of SLURM 22.05 (slurm_errno.c, job_scheduler.c) this cluster cannot be made to say.
    assert sp.refused_for_now("sbatch: error: Batch job submission failed: Socket timed out "
                              "on send/recv operation")
    assert not sp.refused_for_now("sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: "
                                  "Batch job submission failed: Job violates accounting/QOS "
                                  "policy (job submit limit, user's size and/or time limits)")
    assert not sp.refused_for_now("sbatch: error: Batch job submission failed: Something new")


def test_sbatch_error_lines_are_one_line() -> None:
    assert sp.one_line(fixture("sbatch_error_qos_submit_limit.stderr")) == (
        "QOSMaxSubmitJobPerUserLimit; Batch job submission failed: Job violates accounting/QOS "
        "policy (job submit limit, user's size and/or time limits)")


def test_sacct_argv() -> None:
    assert sp.sacct_argv(["7", "40_1"]) == [
        "sacct", "-X", "-n", "-P", "-j", "7,40_1", "-o",
        "JobID,JobIDRaw,JobName,State,ExitCode,Elapsed,Start,End,Reason",
    ]  # fmt: skip


# ------------------------------------------------------------------ jobcomp


@pytest.mark.parametrize(
    ("job_id", "state", "exit_code", "name"),
    [
        (IDS["ok"], "COMPLETED", 0, "tg.fix.ok"),
        (IDS["failed"], "FAILED", 3, "tg.fix.failed"),
        (IDS["blocked"], "CANCELLED", 0, "tg.fix.blocked"),
        (IDS["timeout"], "TIMEOUT", 0, "tg.fix.timeout"),
        (task("array", 0), "COMPLETED", 0, "tg.fix.array"),
        (task("array", 2), "COMPLETED", 0, "tg.fix.array"),
    ],
)
def test_jobcomp_observation(job_id: str, state: str, exit_code: int, name: str) -> None:
    obs = sp.parse_jobcomp(fixture("jobcomp.txt"), UTC)[job_id]
    assert (obs.job_id, obs.state, obs.exit_code, obs.name) == (job_id, state, exit_code, name)


def test_jobcomp_keys_array_tasks_like_squeue() -> None:
    found = sp.parse_jobcomp(fixture("jobcomp.txt"), UTC)
    assert len(found) == 10
    assert "43" not in found
    assert found[IDS["timeout"]].end == "2026-11-24T15:41:35Z"


def test_jobcomp_value_with_spaces() -> None:
    line = fixture("jobcomp_handwritten.txt")
    assert sp.parse_jobcomp_line(line)["WorkDir"] == "/data/my runs/a"
    assert sp.parse_jobcomp_line(line)["ReservationName"] == ""
    obs = sp.parse_jobcomp(line, UTC)["97"]
    assert (obs.state, obs.exit_code) == ("OUT_OF_MEMORY", 137)


# ------------------------------------------------------------------ status


def _sacct(name: str, job_id: str) -> JobObservation:
    return sp.parse_sacct(fixture(name), UTC)[job_id]


# (observation, log text, status state, reason, message)
STATUS_ROWS = [
    ("completed", squeue("squeue_final.txt")[IDS["ok"]], None,
     states.COMPLETED, "", f"job {IDS['ok']} completed"),
    ("completed job with an OOM text stays completed", squeue("squeue_final.txt")[IDS["ok"]],
     "CUDA out of memory", states.COMPLETED, "", f"job {IDS['ok']} completed"),
    ("exit 3: the log's last line is its cause", squeue("squeue_final.txt")[IDS["failed"]],
     "failing\n", states.FAILED, states.REASON_NON_ZERO_EXIT,
     f"job {IDS['failed']} exited with code 3: failing"),
    ("exit 3: the exception line of the log's last traceback",
     squeue("squeue_final.txt")[IDS["failed"]], (LOGS / "inspect-task-keyerror.log").read_text(),
     states.FAILED, states.REASON_NON_ZERO_EXIT,
     f"job {IDS['failed']} exited with code 3: KeyError: 'answer'"),
    ("exit 3 with an empty log", squeue("squeue_final.txt")[IDS["failed"]], "\n",
     states.FAILED, states.REASON_NON_ZERO_EXIT, f"job {IDS['failed']} exited with code 3"),
    ("CUDA OOM in the log", squeue("squeue_final.txt")[IDS["cudaoom"]],
     fixture("log_cudaoom.txt"), states.FAILED, states.REASON_CUDA_OOM,
     f"job {IDS['cudaoom']} ran out of GPU memory: "
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ("CUDA OOM job without a readable log", squeue("squeue_final.txt")[IDS["cudaoom"]], None,
     states.FAILED, states.REASON_NON_ZERO_EXIT, f"job {IDS['cudaoom']} exited with code 1"),
    ("dependency kill in squeue", squeue("squeue_final.txt")[IDS["blocked"]], None,
     states.BLOCKED, states.REASON_DEPENDENCY_FAILED, "a job it depends on did not complete"),
    ("dependency kill in sacct", _sacct("sacct_final.txt", IDS["blocked"]), None,
     states.BLOCKED, states.REASON_DEPENDENCY_FAILED, "a job it depends on did not complete"),
    ("dependency never satisfied, still pending", squeue("squeue_handwritten.txt")["95"], None,
     states.BLOCKED, states.REASON_DEPENDENCY_FAILED, "a job it depends on did not complete"),
    ("scancel", squeue("squeue_final.txt")[IDS["cancel"]], None,
     states.CANCELLED, states.REASON_CANCELLED, f"job {IDS['cancel']} was cancelled"),
    ("scancel in sacct", _sacct("sacct_final.txt", IDS["cancel"]), None,
     states.CANCELLED, states.REASON_CANCELLED, f"job {IDS['cancel']} was cancelled"),
    ("time limit", squeue("squeue_final.txt")[IDS["timeout"]], None,
     states.FAILED, states.REASON_TIMEOUT,
     f"job {IDS['timeout']} hit its time limit after 79 s (TIMEOUT)"),
    ("time limit: SLURM's word, not the log's last line",
     squeue("squeue_final.txt")[IDS["timeout"]],
     "step 9\nslurmstepd: error: *** JOB 9 CANCELLED DUE TO TIME LIMIT ***\n",
     states.FAILED, states.REASON_TIMEOUT,
     f"job {IDS['timeout']} hit its time limit after 79 s (TIMEOUT)"),
    ("held", squeue("squeue_final.txt")[IDS["held"]], None,
     states.SUBMITTED, "JobHeldUser", "waiting in the queue (JobHeldUser)"),
    ("waiting on a dependency", squeue("squeue_submitted.txt")[IDS["after_ok"]], None,
     states.SUBMITTED, "Dependency", "waiting in the queue (Dependency)"),
    ("pending, no reason", squeue("squeue_submitted.txt")[IDS["ok"]], None,
     states.SUBMITTED, "", "waiting in the queue"),
    ("running", squeue("squeue_running.txt")[IDS["cancel"]], None,
     states.RUNNING, "", f"running as job {IDS['cancel']}"),
    ("completing", squeue("squeue_handwritten.txt")["94"], None,
     states.RUNNING, "", "running as job 94"),
    ("host OOM", squeue("squeue_handwritten.txt")["90"], None,
     states.FAILED, states.REASON_OOM,
     "job 90 was killed for using more host memory than it asked for (OUT_OF_MEMORY)"),
    ("node failure", _sacct("sacct_handwritten.txt", "91"), None,
     states.FAILED, states.REASON_NODE_FAIL, "job 91 was lost when its node failed (NODE_FAIL)"),
    ("preempted", _sacct("sacct_handwritten.txt", "92"), None,
     states.FAILED, states.REASON_PREEMPTED,
     "job 92 was preempted to make room for another job (PREEMPTED)"),
    ("refused by sbatch", squeue("squeue_rejected.txt")["46"], None,
     states.FAILED, "BadConstraints", "job 46 failed: BadConstraints"),
    ("a state this version does not know", _sacct("sacct_handwritten.txt", "96"), None,
     None, "", "job 96: scheduler state UNKNOWN, unknown this cycle"),
    ("unknown this cycle", JobObservation("7", states.JOB_UNKNOWN), "CUDA out of memory",
     None, "", "job 7: scheduler state UNKNOWN, unknown this cycle"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("obs", "log_text", "state", "reason", "message"),
    [row[1:] for row in STATUS_ROWS],
    ids=[row[0] for row in STATUS_ROWS],
)
def test_status_from_observation(
    obs: JobObservation, log_text: str | None, state: str | None, reason: str, message: str
) -> None:
    assert sp.status_from_observation(obs, log_text) == (state, reason, message)


def test_unknown_is_never_a_failure() -> None:
    for obs in (JobObservation("1", states.JOB_UNKNOWN), JobObservation("1", "")):
        assert sp.status_from_observation(obs, "torch.OutOfMemoryError")[0] is None


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("CANCELLED by 0", "CANCELLED"),
        ("CANCELLED+", "CANCELLED"),
        ("OUT_OF_MEMORY", "OUT_OF_MEMORY"),
        ("BOOT_FAIL", "NODE_FAIL"),
        ("REQUEUED", "PENDING"),
        ("", "UNKNOWN"),
        ("SOMETHING_NEW", "UNKNOWN"),
    ],
)
def test_job_state(text: str, state: str) -> None:
    assert sp.job_state(text) == state


@pytest.mark.parametrize(
    ("raw", "code"), [("0", 0), ("768", 3), ("256", 1), ("15", 143), ("N/A", None), ("", None)]
)
def test_exit_code_from_status(raw: str, code: int | None) -> None:
    assert sp.exit_code_from_status(raw) == code


@pytest.mark.parametrize(
    ("text", "code"), [("0:0", 0), ("3:0", 3), ("0:15", 143), ("1:0", 1), ("", None)]
)
def test_exit_code_from_pair(text: str, code: int | None) -> None:
    assert sp.exit_code_from_pair(text) == code


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:00", 0.0),
        ("1:19", 79.0),
        ("00:01:19", 79.0),
        ("1:00:00", 3600.0),
        ("1-02:03:04", 93784.0),
        ("UNLIMITED", None),
        ("INVALID", None),
        ("", None),
    ],
)
def test_duration(text: str, seconds: float | None) -> None:
    assert sp.duration_s(text) == seconds


@pytest.mark.parametrize(
    ("spec", "tasks"),
    [("0-2", [0, 1, 2]), ("1,3-5", [1, 3, 4, 5]), ("0-999%4", list(range(1000))),
     ("0-10:5", [0, 5, 10]), ("7", [7])],
)  # fmt: skip
def test_expand_task_ids(spec: str, tasks: list[int]) -> None:
    assert sp.expand_task_ids(spec) == tasks


def test_iso_utc() -> None:
    plus_two = timezone(__import__("datetime").timedelta(hours=2))
    assert sp.iso_utc("2026-11-24T15:40:16", UTC) == "2026-11-24T15:40:16Z"
    assert sp.iso_utc("2026-11-24T15:40:16", plus_two) == "2026-11-24T13:40:16Z"
    assert [sp.iso_utc(v, UTC) for v in ("N/A", "Unknown", "NONE", "junk")] == [None] * 4


@pytest.mark.parametrize(("stdout", "job_id"), [("57\n", "57"), ("57;cl\n", "57"), ("", ""),
                                                 ("Submitted batch job 5\n", "")])  # fmt: skip
def test_parse_sbatch_id(stdout: str, job_id: str) -> None:
    assert sp.parse_sbatch_id(stdout) == job_id


# ------------------------------------------------------------------ names


def test_ids_by_name_plain_jobs_and_array_tasks() -> None:
    rows = sp.parse_squeue(fixture("squeue_final.txt"), UTC)
    command = next(row.command for row in rows if row.task_ids)
    found = sp.ids_by_name(rows, {command: ["tg.a", "tg.b", "tg.c"]})
    assert found["tg.fix.failed"] == IDS["failed"]
    assert [found[n] for n in ("tg.a", "tg.b", "tg.c")] == [task("array", i) for i in range(3)]
    assert "tg.fix.array" not in found  # the array's own name is not a task's


def test_ids_by_name_pending_array_and_newest_duplicate() -> None:
    rows = sp.parse_squeue(fixture("squeue_submitted.txt") + fixture("squeue_rejected.txt"), UTC)
    command = next(row.command for row in rows if row.task_ids)
    found = sp.ids_by_name(rows, {command: ["tg.a", "tg.b", "tg.c"]})
    assert found["tg.c"] == task("array", 2)
    assert found["tg.fix.err"] == "46"


def test_array_without_registry_gives_no_task_names() -> None:
    rows = sp.parse_squeue(fixture("squeue_final.txt"), UTC)
    assert sp.ids_by_name(rows, {}).keys() == {
        "tg.fix.blocked", "tg.fix.cancel", "tg.fix.ok", "tg.fix.after_ok", "tg.fix.failed",
        "tg.fix.cudaoom", "tg.fix.later", "tg.fix.held", "tg.fix.timeout",
    }  # fmt: skip


# ------------------------------------------------------------------ sbatch lines

FULL = Resources(gpus=2, cpus=8, mem_gb=64, time_minutes=90, partition="gpu", account="lab",
                 qos="high", constraint="a100")  # fmt: skip


def spec(name: str, workdir: str = "/x/exp/run", **kw: object) -> JobPlan:
    base = Path(workdir)
    return JobPlan(name, base / "run.sh", base, base / "out.log", **kw)  # type: ignore[arg-type]


def test_sbatch_argv_with_everything() -> None:
    """sbatch gets the script and its dependencies; everything else is the script's header."""
    job = spec("tg.e.r.eval", resources=FULL, after=("a", "b"))
    assert sp.sbatch_argv(job, ["12", "13_1"]) == [
        "sbatch", "--parsable", "--dependency=afterok:12:13_1", "--kill-on-invalid-dep=yes",
        "/x/exp/run/run.sh",
    ]  # fmt: skip
    assert job_options(job) == [
        "--account=lab", "--chdir=/x/exp/run", "--constraint=a100", "--cpus-per-task=8",
        "--gres=gpu:2", "--job-name=tg.e.r.eval", "--mem=64G", "--nodes=1", "--ntasks=1",
        "--output=/x/exp/run/out.log", "--partition=gpu", "--qos=high", "--time=1:30:00",
    ]  # fmt: skip


def test_sbatch_argv_minimal() -> None:
    assert sp.sbatch_argv(spec("tg.e.r.ft")) == ["sbatch", "--parsable", "/x/exp/run/run.sh"]


def test_check_header_names_what_differs() -> None:
    job = spec("tg.e.r.ft", resources=FULL)
    good = f"#!/bin/bash\n# a comment\n{header_lines(job)}\nset -e\n#SBATCH --mem=1G\n"
    assert sp.check_header(job, good) == ""
    edited = good.replace("--mem=64G", "--mem=8G")
    assert sp.check_header(job, edited) == (
        "its #SBATCH header does not match the job's plan; missing --mem=64G; "
        "not planned --mem=8G")


def test_array_plan_and_argv() -> None:
    jobs = [spec("tg.e.a.ft", "/x/exp/a"), spec("tg.e.b.ft", "/x/exp/b")]
    plan = sp.plan_array(jobs)
    assert plan.name == sp.array_name(["tg.e.a.ft", "tg.e.b.ft"])
    assert plan.name.startswith("tg.e.array-") and len(plan.name) == len("tg.e.array-") + 10
    assert plan.wrapper == Path(f"/x/exp/.tunegit/{plan.name}.sh")
    assert sp.sbatch_array_argv(plan) == ["sbatch", "--parsable", str(plan.wrapper)]
    assert header_options(sp.render_array_wrapper(plan)) == [
        "--array=0-1", "--chdir=/x/exp/a", "--cpus-per-task=1", f"--job-name={plan.name}",
        "--mem=4G", "--nodes=1", "--ntasks=1", f"--output=/x/exp/.tunegit/{plan.name}-%a.out",
        "--time=1:00:00",
    ]  # fmt: skip
    assert sp.is_array_wrapper(str(plan.wrapper))
    assert not sp.is_array_wrapper("/x/exp/a/run.sh")


def test_array_name_is_deterministic_and_order_sensitive() -> None:
    assert sp.array_name(["tg.a", "tg.b"]) == sp.array_name(["tg.a", "tg.b"])
    assert sp.array_name(["tg.a", "tg.b"]) != sp.array_name(["tg.b", "tg.a"])


def test_array_wrapper_runs_each_task_in_its_workdir(tmp_path: Path) -> None:
    jobs = []
    for name in ("it's_a", "b"):
        workdir = tmp_path / "exp" / name
        workdir.mkdir(parents=True)
        (workdir / "run.sh").write_text('echo "task in $(basename "$PWD")"; exit 4\n')
        jobs.append(JobPlan(f"tg.{name[-1]}", workdir / "run.sh", workdir, workdir / "out.log"))
    plan = sp.plan_array(jobs)
    text = sp.render_array_wrapper(plan)
    assert sp.parse_array_registry(text) == ["tg.a", "tg.b"]
    assert f"  0) cd -- {shlex.quote(str(jobs[0].workdir))} && exec bash --" in text
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "0"}
    done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    assert done.returncode == 4
    assert (jobs[0].workdir / "out.log").read_text() == "task in it's_a\n"
    env["SLURM_ARRAY_TASK_ID"] = "5"
    done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, "tunegit: no task 5 in this array\n")


def test_registry_of_a_foreign_script_is_empty() -> None:
    assert sp.parse_array_registry("#!/bin/bash\necho hi\n") == []


# ------------------------------------------------------------------ slurm.py pure helpers


def test_independent_groups_by_equal_resources() -> None:
    big = Resources(gpus=1)
    jobs = [spec("a"), spec("b", resources=big), spec("c"), spec("d", after=("a",))]
    groups = independent_groups(jobs)
    assert [[j.name for j in g] for g in groups] == [["a", "c"], ["b"]]
    assert [[j.name for j in g] for g in independent_groups(jobs, False)] == [["a"], ["b"], ["c"]]


def test_dependency_order_and_unknown_parent() -> None:
    jobs = [spec("c", after=("b",)), spec("b", after=("a",))]
    assert [j.name for j in dependency_order(jobs, {"a"})] == ["b", "c"]
    with pytest.raises(SubmitError, match=r"^c: depends on x, which has no job id"):
        dependency_order([spec("c", after=("x",))], {"a"})


def test_vanished_tasks_only_when_the_array_is_still_listed() -> None:
    rows = sp.parse_squeue(fixture("squeue_final.txt"), UTC)
    found = vanished_tasks([task("array", 7), "999_1", "998"], rows)
    assert list(found) == [task("array", 7)]
    assert (found[task("array", 7)].state, found[task("array", 7)].reason) == (
        "CANCELLED",
        "ArrayTaskVanished",
    )


def test_backoff_is_seeded_bounded_and_grows() -> None:
    backoff = Backoff(base_s=10, max_s=100, factor=2, jitter=0.1, seed=3)
    delays = [backoff.delay(n) for n in range(8)]
    assert delays == [Backoff(10, 100, 2, 0.1, 3).delay(n) for n in range(8)]
    assert 9 <= delays[0] <= 11 and 18 <= delays[1] <= 22 and 36 <= delays[2] <= 44
    assert all(90 <= d <= 110 for d in delays[4:])
    assert delays != [Backoff(10, 100, 2, 0.1, 4).delay(n) for n in range(8)]
    assert Backoff(jitter=0).delay(10_000) == 600.0


def test_site_extra_options_reach_single_jobs_and_arrays(tmp_path: Path) -> None:
    """slurm.extra_sbatch travels in Resources, so an array's wrapper header asks for the
    same as a single job's script header."""
    res = Resources(cpus=2, mem_gb=4, time_minutes=30, extra=("--mail-type=END",))
    jobs = [JobPlan(f"tg.e.r{i}.ft", tmp_path / f"r{i}" / "finetune.slurm", tmp_path / f"r{i}",
                    tmp_path / f"r{i}" / "ft.log", res) for i in range(2)]
    assert "--mail-type=END" in job_options(jobs[0])
    assert "--mail-type=END" in header_options(sp.render_array_wrapper(sp.plan_array(jobs)))
    assert "--mail-type=END" not in job_options(
        JobPlan("x", tmp_path / "s", tmp_path, tmp_path / "l", Resources()))
