"""Scheduler faults on the real local SLURM: the controller stopped during a poll, sbatch
refusing a job (no such partition, no such QOS), a job killed by its time limit; and, through
a `squeue` stand-in that rewrites the real answer for one job, OUT_OF_MEMORY, NODE_FAIL and
PREEMPTED (this one-node cluster without cgroups or preemption cannot produce them; the rows
are in the format recorded in tests/fixtures/slurm/squeue_handwritten.txt); and `sbatch`
stand-ins for a garbage answer and a non-zero exit after the job went in.

Each ends in a truthful state with its reason, nothing is retried forever (the sbatch log
is counted across later cycles), and the other experiment of the same repository is served.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from gitfixtures import AUTOMATION, REPO, clone, commit_all, git, tunegit
from planfixtures import weightless_model
from test_crash_safety import Slurm, crash_plan, reconcile
from test_slurm_executor import cluster_state
from tunegit.core.jobplan import job_name
from tunegit.edges.workspace import STATUS_FILE

_DOWN = cluster_state()
pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.skipif(bool(_DOWN), reason=_DOWN),
              pytest.mark.usefixtures("git_env")]

START = REPO / ".ci/slurm/start-local-slurm.sh"
HOLD = "  extra_sbatch: ['--begin=now+1hour']\n"


def site(slurm_lines: str = HOLD, tail: str = "") -> str:
    text = (REPO / "sites/local-slurm.yaml").read_text()
    text = text.replace("  poll_interval_s: 2\n", "  poll_interval_s: 2\n" + slurm_lines)
    return text + f"environment: {{variables: {{PYTHONPATH: '{AUTOMATION}'}}{tail}}}\n"


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    s = Slurm(tmp_path, monkeypatch)
    yield s
    s.cancel()


def repo_with(origin: Path, tmp_path: Path, sites: dict[str, str],
              plans: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """One repository, several experiments (plan key -> site name); returns the watcher."""
    laptop = clone(origin, tmp_path / "laptop")
    names = {}
    for name, text in sites.items():
        (laptop / f"sites/{name}.yaml").write_text(text)
    for key, site_name in plans.items():
        name = f"{key}_{uuid.uuid4().hex[:6]}"
        names[key] = name
        plan = laptop / "experiments" / name / "experiment.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(crash_plan(name, site_name, [8]))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    commit_all(laptop, "Plans")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    watcher = clone(origin, tmp_path / "watcher", name="tunegit watcher")
    weightless_model(watcher)  # the preflight finds the model; these jobs are about SLURM
    return watcher, names


def steps(origin: Path, name: str) -> dict[str, dict[str, object]]:
    data = yaml.safe_load(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}"))
    out = {}
    for run, rec in data["runs"].items():
        out[f"{run}/ft"] = rec["finetune"]
        out.update({f"{run}/{k}": v for k, v in rec["evaluations"].items()})
    return out


def ft(origin: Path, name: str) -> dict[str, object]:
    return steps(origin, name)["tiny-llama_rank8/ft"]


# --- the controller goes away ----------------------------------------------------------------

def _ctld_pid() -> int:
    pid = int(Path("/run/slurm-local/slurmctld.pid").read_text().strip())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    return pid


def _wait(cond: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.5)


@pytest.mark.skipif(not Path("/run/slurm-local/slurmctld.owned").exists(),
                    reason="the controller was not started by .ci/slurm/start-local-slurm.sh")
def test_controller_stopped_during_a_poll_is_unknown_not_failed(
        origin: Path, tmp_path: Path, slurm: Slurm) -> None:
    watcher, names = repo_with(origin, tmp_path, {"held": site()}, {"live": "held"})
    assert reconcile(watcher).returncode == 0
    before = ft(origin, names["live"])
    assert before["status"] == "submitted"
    # A second experiment lands while the controller is down: nothing may be submitted.
    laptop = tmp_path / "laptop"
    late = f"late_{uuid.uuid4().hex[:6]}"
    plan = laptop / "experiments" / late / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(crash_plan(late, "held", [8]))
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    commit_all(laptop, "Late plan")
    git(laptop, "push", "-q", "origin", "HEAD:main")

    pid = _ctld_pid()
    os.kill(pid, 15)
    _wait(lambda: not Path(f"/proc/{pid}").exists()
          or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], 30)
    try:
        down = reconcile(watcher)
        assert down.returncode == 1 and "scheduler not answering" in down.stderr
        assert "Traceback" not in down.stderr and "internal error" not in down.stderr
        assert ft(origin, names["live"]) == before  # unknown this cycle: unchanged
        assert ft(origin, late)["status"] == "pending"
        assert len(slurm.submitted()) == 2
    finally:
        env = {**os.environ, "SLURM_LOCAL_CPUS": "8", "SLURM_LOCAL_GPUS": "2"}
        subprocess.run(["bash", str(START), "--no-install"], env=env, check=True,
                       capture_output=True, timeout=180)
    _wait(lambda: cluster_state() == "", 60)
    for _ in range(2):
        up = reconcile(watcher)
        assert up.returncode == 0, up.stderr
    assert ft(origin, names["live"])["job_id"] == before["job_id"]  # the same job, found again
    assert ft(origin, late)["status"] == "submitted"
    counts = slurm.submitted()
    assert len(counts) == 4 and set(counts.values()) == {1}


# --- sbatch refuses --------------------------------------------------------------------------

# For good: no such partition, a request over the node's limits.
@pytest.mark.parametrize(("setting", "expected"), [
    ("  partition: nosuch\n", "invalid partition specified"),
    ("  mem_gb: 100000\n", "Memory specification can not be satisfied")])
def test_a_refused_submission_fails_with_the_reason_once(
        origin: Path, tmp_path: Path, slurm: Slurm, setting: str, expected: str) -> None:
    bad = site(HOLD).replace("  mem_gb: 2\n", "") if "mem_gb" in setting else site(HOLD)
    watcher, names = repo_with(origin, tmp_path, {"bad": bad.replace(HOLD, setting + HOLD),
                                                  "good": site()},
                               {"refused": "bad", "served": "good"})
    first = reconcile(watcher)
    assert first.returncode == 1 and "the scheduler refused" in first.stderr
    assert expected in first.stderr and "Traceback" not in first.stderr
    for _ in range(3):  # nothing retried: the refused run waits for a new run name
        reconcile(watcher)
    step = ft(origin, names["refused"])
    assert (step["status"], step["reason"]) == ("failed", "SubmitFailed")
    assert expected in str(step["message"])
    evaluation = steps(origin, names["refused"])["tiny-llama_rank8/capitalization_epoch_0"]
    # Chained in the same submission as its refused fine-tune: refused with it, never run.
    assert (evaluation["status"], evaluation["reason"]) in (("blocked", "DependencyFailed"),
                                                            ("failed", "SubmitFailed"))
    assert ft(origin, names["served"])["status"] == "submitted"  # the other is served
    counts = slurm.submitted()
    refused = [n for n in counts if names["refused"] in n]
    assert refused == [job_name(names["refused"], "tiny-llama_rank8", "ft")]
    assert counts[refused[0]] == 1


def sacctmgr(*args: str) -> None:
    subprocess.run(["sacctmgr", "-i", *args], check=True, capture_output=True, timeout=60)


def enforced() -> bool:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                            timeout=30).stdout
    return any("AccountingStorageEnforce" in line and "qos" in line
               for line in config.splitlines())


@pytest.fixture
def capped_qos() -> Iterator[str]:
    """A QOS letting a user have 2 jobs queued or running, added to this user's association
    (start-local-slurm.sh's dbd mode enforces QOS limits, as shared clusters do)."""
    if not enforced():
        pytest.skip("QOS limits not enforced (start the cluster with SLURM_LOCAL_ACCOUNTING=dbd)")
    name, user = f"tgcap{uuid.uuid4().hex[:6]}", getpass.getuser()
    sacctmgr("add", "qos", name, "MaxSubmitJobsPerUser=2")
    sacctmgr("modify", "user", user, "set", f"qos+={name}")
    yield name
    subprocess.run(["scancel", f"--qos={name}"], check=False)
    sacctmgr("modify", "user", user, "set", f"qos-={name}")
    sacctmgr("delete", "qos", name)


def test_a_submission_refused_by_a_qos_cap_stays_pending_and_a_later_cycle_submits_it(
        origin: Path, tmp_path: Path, slurm: Slurm, capped_qos: str) -> None:
    capped = site(f"  qos: {capped_qos}\n  submit_retry_s: 15\n" + HOLD)
    watcher, names = repo_with(origin, tmp_path, {"capped": capped}, {"capped": "capped"})
    name = names["capped"]
    evaluation = job_name(name, "tiny-llama_rank8", "capitalization_epoch_0")
    # Someone's job holds one of the QOS's two places: the fine-tune gets the other.
    other = subprocess.run(["sbatch", f"--qos={capped_qos}", "--begin=now+1hour", "-J",
                            f"other-{capped_qos}", "--wrap", "true"], check=True,
                           capture_output=True, text=True, timeout=60)
    first = reconcile(watcher)
    assert first.returncode == 0, first.stderr  # waiting, not failing
    assert "waiting:" in first.stderr and "QOSMaxSubmitJobPerUserLimit" in first.stderr
    assert "Traceback" not in first.stderr
    assert ft(origin, name)["status"] == "submitted"
    step = steps(origin, name)["tiny-llama_rank8/capitalization_epoch_0"]
    assert (step["status"], step["refusals"]) == ("pending", 1), step
    assert "QOSMaxSubmitJobPerUserLimit" in str(step["message"])
    assert f"tried again from {step['next_try']}" in str(step["message"])
    assert reconcile(watcher).returncode == 0  # within its back-off: sbatch is not called
    assert slurm.submitted()[evaluation] == 1
    assert steps(origin, name)["tiny-llama_rank8/capitalization_epoch_0"] == step
    subprocess.run(["scancel", other.stdout.split()[-1]], check=True, timeout=60)
    time.sleep(16)  # past its next try
    assert reconcile(watcher).returncode == 0
    after = steps(origin, name)["tiny-llama_rank8/capitalization_epoch_0"]
    assert after["status"] == "submitted", after
    assert "refusals" not in after and "next_try" not in after and "message" not in after
    assert slurm.submitted()[evaluation] == 2  # refused once, accepted once
    assert Slurm.ids(evaluation) == [after["job_id"]]


def test_a_site_submit_cap_drip_feeds_jobs_across_experiments_and_cycles(
        origin: Path, tmp_path: Path, slurm: Slurm) -> None:
    capped = site(HOLD).replace("slurm:\n", "max_submitted: 1\nslurm:\n", 1)
    assert "max_submitted: 1\n" in capped
    watcher, names = repo_with(origin, tmp_path, {"capped": capped},
                               {"one": "capped", "two": "capped"})
    queued_by_cycle = []
    for _ in range(4):
        assert reconcile(watcher).returncode == 0
        held = [n for n in slurm.submitted() if Slurm.ids(n) and _queued(Slurm.ids(n)[-1])]
        queued_by_cycle.append(len(held))
        for job in held:  # it ends (cancelled): the next cycle has room for one more
            subprocess.run(["scancel", "--name", job], check=True, timeout=60)
    assert queued_by_cycle == [1, 1, 0, 0], queued_by_cycle
    counts = slurm.submitted()
    assert sorted(counts) == sorted(job_name(names[k], "tiny-llama_rank8", "ft")
                                    for k in ("one", "two"))
    assert set(counts.values()) == {1}


def _queued(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True, timeout=60).stdout
    return out.strip() in ("PENDING", "RUNNING")


@pytest.mark.parametrize("fault", ["garbage", "exit-after-submit"])
def test_sbatch_answers_that_are_not_an_id(origin: Path, tmp_path: Path, slurm: Slurm,
                                           fault: str) -> None:
    """Stand-ins (the real sbatch never does this on demand): a garbage answer with rc 0
    and nothing submitted; and rc 1 after the job did go in (a lost reply). Either way no
    second submission, and the second is tracked as the queued job it is."""
    real = slurm.bin / "sbatch"
    text = real.read_text()
    if fault == "garbage":
        text = text.replace('"$@"; rc=$?', '--version >/dev/null; echo "Submitted? ¯\\\\_(ツ)_/¯";'
                            " rc=0", 1)
    else:
        text = text.replace("exit $rc", "exit 1")
    real.write_text(text)
    watcher, names = repo_with(origin, tmp_path, {"held": site()}, {"odd": "held"})
    reconcile(watcher)
    for _ in range(2):
        assert "Traceback" not in reconcile(watcher).stderr
    step = ft(origin, names["odd"])
    submitted = slurm.submitted()
    assert submitted[job_name(names["odd"], "tiny-llama_rank8", "ft")] == 1
    assert set(submitted.values()) == {1}  # nothing twice
    if fault == "garbage":
        assert len(submitted) == 1
        assert (step["status"], step["reason"]) == ("failed", "SubmitFailed")
        assert "Submitted?" in str(step["message"])
    else:
        in_queue = Slurm.ids(job_name(names["odd"], "tiny-llama_rank8", "ft"))
        assert len(in_queue) == 1
        # A lost reply: the job went in, so it is found by its name and tracked, not failed.
        assert step["status"] in ("submitted", "running"), step
        assert step["job_id"] == in_queue[0]


# --- jobs that end badly ---------------------------------------------------------------------

def test_a_job_killed_by_its_time_limit_is_failed_timeout(origin: Path, tmp_path: Path,
                                                         slurm: Slurm) -> None:
    """The site's own `activate` line sleeps past the one-minute limit (a real TIMEOUT)."""
    slow = site("  min_time_minutes: 1\n  time_limit_max_minutes: 1\n",
                tail=", activate: 'sleep 300'")
    slow = slow.replace("  min_time_minutes: 5\n", "").replace(
        "  time_limit_max_minutes: 60\n", "")
    watcher, names = repo_with(origin, tmp_path, {"slow": slow}, {"late": "slow"})
    assert reconcile(watcher).returncode == 0
    deadline = time.monotonic() + 240
    while ft(origin, names["late"])["status"] not in ("failed", "completed", "cancelled"):
        assert time.monotonic() < deadline, ft(origin, names["late"])
        time.sleep(5)
        reconcile(watcher)
    step = ft(origin, names["late"])
    assert (step["status"], step["reason"]) == ("failed", "TimeLimit"), step
    assert "hit its time limit" in str(step["message"])
    for _ in range(2):
        reconcile(watcher)
    evaluation = steps(origin, names["late"])["tiny-llama_rank8/capitalization_epoch_0"]
    assert evaluation["status"] == "blocked"
    assert set(slurm.submitted().values()) == {1}


def fake_squeue(bin_dir: Path, job_name: str, state: str, reason: str) -> None:
    """Real squeue, with the row of one job rewritten to a state this cluster cannot
    produce (columns as in tests/fixtures/slurm/squeue_handwritten.txt)."""
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True,
                          check=True).stdout.strip()
    script = bin_dir / "squeue"
    script.write_text(
        "#!/bin/bash\n"
        f'"{real}" "$@" | awk -F"|" -v OFS="|" \'$13 == "{job_name}" '
        f'{{ $5 = "{state}"; $6 = "{reason}"; $8 = "2026-11-24T15:40:16"; '
        '$9 = "2026-11-24T15:45:16" } { print }\'\n'
        "exit ${PIPESTATUS[0]}\n")
    script.chmod(0o755)


@pytest.mark.parametrize(("state", "reason", "expected"), [
    ("OUT_OF_MEMORY", "OutOfMemory", "OutOfMemory"),
    ("NODE_FAIL", "NodeDown", "NodeFail"),
    ("PREEMPTED", "None", "Preempted")])
def test_oom_node_failure_and_preemption_end_truthfully(
        origin: Path, tmp_path: Path, slurm: Slurm, state: str, reason: str,
        expected: str) -> None:
    watcher, names = repo_with(origin, tmp_path, {"held": site()},
                               {"hit": "held", "other": "held"})
    assert reconcile(watcher).returncode == 0
    job = job_name(names["hit"], "tiny-llama_rank8", "ft")
    fake_squeue(slurm.bin, job, state, reason)
    for _ in range(3):
        out = reconcile(watcher)
        assert "Traceback" not in out.stderr
    step = ft(origin, names["hit"])
    assert step["status"] == "failed" and step["reason"] == expected, step
    evaluation = steps(origin, names["hit"])["tiny-llama_rank8/capitalization_epoch_0"]
    assert evaluation["status"] in ("blocked", "submitted")  # SLURM cancels it on its own
    assert ft(origin, names["other"])["status"] == "submitted"  # served, untouched
    assert set(slurm.submitted().values()) == {1} and len(slurm.submitted()) == 4
