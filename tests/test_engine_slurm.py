"""The engine and `tunegit run` on the real local SLURM (.ci/slurm/start-local-slurm.sh) with
sites/local-slurm.yaml: real sbatch/squeue/sacct/scancel, real torchtune and inspect-ai on
the tiny model. The only stand-ins are `sbatch`/`scancel` wrappers first on PATH that log
their argv and exec the real programs, to count submissions and see who cancelled what."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from planfixtures import LOCAL_FILES, weightless_model
from test_crash_safety import SBATCH_HEADER
from test_local_executor import MISSING_MODEL, failing_plan, job_repo
from test_slurm_executor import cluster_state
from tunegit import cli
from tunegit.cli import main
from tunegit.commands import cancel as cancel_cmd
from tunegit.commands import retry as retry_cmd
from tunegit.commands import run as run_cmd
from tunegit.core.jobplan import job_name
from tunegit.core.records import SCHEDULER_UNANSWERED
from tunegit.core.status import StatusFile
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.files import read_status, utc_now
from tunegit.loop.engine import cycle

REPO = Path(__file__).resolve().parents[1]
DEMO = "demo_capitalization"
SITE = "local-slurm"
_DOWN = cluster_state()
pytestmark = [
    pytest.mark.slow, pytest.mark.slurm, pytest.mark.train,
    pytest.mark.skipif(bool(_DOWN), reason=_DOWN),
    pytest.mark.skipif(importlib.util.find_spec("torchtune") is None
                       or importlib.util.find_spec("inspect_ai") is None,
                       reason="needs the train extra (pip install -e '.[train]')"),
]


class Calls:
    """sbatch and scancel as logged by the PATH wrappers: one line per call, argv joined."""

    def __init__(self, log: Path):
        self.log = log

    def of(self, program: str) -> list[list[str]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split()[1:] for line in text.splitlines() if line.split()[0] == program]


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    bin_dir, log = tmp_path / "slurm-wrappers", tmp_path / "slurm-calls.log"
    bin_dir.mkdir()
    for program in ("sbatch", "scancel"):
        real = shutil.which(program)
        assert real, f"{program} not on PATH"
        wrapper = bin_dir / program
        # sbatch: the call and the script's own #SBATCH options (name, array: what sbatch reads).
        header = SBATCH_HEADER if program == "sbatch" else ""
        wrapper.write_text(f'#!/bin/bash\necho "{program} $* {header}" >> {log}\n'
                           f'exec {real} "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return Calls(log)


def fresh(name: str) -> str:
    """Job names are tg:<experiment>:...; squeue remembers finished jobs for MinJobAge (300 s),
    so each test's experiment gets its own name, or it would adopt an earlier test's jobs."""
    return f"{name}_{uuid.uuid4().hex[:6]}"


def demo_as(repo: Path, name: str) -> None:
    """The demo plan, unchanged but for its name (and directory)."""
    old = repo / "experiments" / DEMO
    plan = (old / "experiment.yaml").read_text()
    assert f"name: {DEMO}\n" in plan
    (old / "experiment.yaml").write_text(plan.replace(f"name: {DEMO}\n", f"name: {name}\n"))
    old.rename(repo / "experiments" / name)


def status_of(repo: Path, name: str) -> StatusFile:
    status = read_status(repo / "experiments" / name / STATUS_FILE)
    assert status is not None
    return status


def cycle_until(ws: Workspace, name: str, site: str, done: Callable[[StatusFile], bool],
                timeout_s: float) -> StatusFile:
    make = executor_factory(ws)
    deadline = time.monotonic() + timeout_s
    while True:
        result = cycle(ws, [name], now=utc_now(), plan_commit=None, executor_for=make,
                       site_override=site)
        assert not [e for e in result.errors if e.kind != SCHEDULER_UNANSWERED], result.errors
        status = status_of(ws.root, name)
        if done(status):
            return status
        assert time.monotonic() < deadline, status.counts()
        time.sleep(1)


def commands() -> argparse.ArgumentParser:
    """tunegit's own parser: `retry` and `cancel` are parsed as on the command line."""
    return cli.build_parser()


def sacct_state(job_id: str) -> str:
    for _ in range(20):  # sacct lags squeue by up to a few seconds
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State,Reason"],
                             capture_output=True, text=True).stdout
        rows = [r for r in out.splitlines() if r.startswith(f"{job_id}|")]
        if rows and rows[0].split("|")[1] not in ("PENDING", "RUNNING"):
            return rows[0]
        time.sleep(0.5)
    raise AssertionError(f"sacct has no final state for {job_id}")


def test_demo_on_slurm_survives_a_crash_between_sbatch_and_the_status_write(
        tmp_path: Path, calls: Calls, capsys: pytest.CaptureFixture[str]) -> None:
    repo = job_repo(tmp_path / "repo", files=(*LOCAL_FILES, f"sites/{SITE}.yaml"),
                    experiments=(DEMO,))
    demo = fresh(DEMO)
    demo_as(repo, demo)
    assert main(["-C", str(repo), "check", "--write", "-q"]) == 0
    assert main(["-C", str(repo), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics only
    ws = Workspace(repo)
    path = repo / "experiments" / demo / STATUS_FILE
    before = path.read_bytes()

    # One cycle submits everything at once: fine-tunes as one array, evaluations chained.
    first = cycle(ws, [demo], now=utc_now(), plan_commit=None,
                  executor_for=executor_factory(ws), site_override=SITE)
    assert first.errors == () and len(first.transitions) == 5
    # The crash: the jobs went in, the status write did not happen.
    path.write_bytes(before)
    submitted = calls.of("sbatch")
    assert len(submitted) == 4  # 1 array + the control's evaluation + 2 chained evaluations

    # A new poller (new process state, new executor) adopts the jobs by name and finishes.
    capsys.readouterr()
    assert main(["-C", str(repo), "run", demo, "--site", SITE, "--poll", "1"]) == 0
    printed = capsys.readouterr().out
    assert "done: 5 completed, 1 skipped" in printed
    assert calls.of("sbatch") == submitted, "a job was submitted twice"

    runs = yaml.safe_load(path.read_text())["runs"]
    ft8, ft32 = runs["tiny-llama_rank8"]["finetune"], runs["tiny-llama_rank32"]["finetune"]
    array = ft8["job_id"].split("_")[0]
    assert array.isdigit() and {ft8["job_id"], ft32["job_id"]} == {f"{array}_0", f"{array}_1"}
    assert [a for a in submitted if any(x.startswith("--array=") for x in a)] == [submitted[0]]
    assert "--array=0-1" in submitted[0]
    for name, ft in (("tiny-llama_rank8", ft8), ("tiny-llama_rank32", ft32)):
        assert ft["status"] == "completed" and ft["exit_code"] == 0
        assert ft["message"] == f"job {ft['job_id']} completed"
        assert ft["elapsed_s"] > 0 and ft["started"] and ft["ended"]
        metrics = ft["metrics"]
        assert metrics["it_per_s"] > 0 and metrics["tokens_per_s"] > 0
        assert metrics["checkpoint_gib"] > 0 and metrics["steps_per_epoch"] == 100
        log = Path(ft["log"])  # the file SLURM's array task really wrote
        assert log.name == "finetune.log" and "Loss:" in log.read_text()
        ev = runs[name]["evaluations"]["capitalization_epoch_2"]
        assert ev["status"] == "completed" and 0.0 <= ev["score"] <= 1.0
        assert ev["job_id"].isdigit()
        chained = [a for a in submitted if f"--job-name={ev['job_name']}" in a]
        assert len(chained) == 1
        assert f"--dependency=afterok:{ft['job_id']}" in chained[0]
        assert "--kill-on-invalid-dep=yes" in chained[0]
    base = runs["tiny-llama_base"]
    assert base["finetune"]["status"] == "skipped"
    base_ev = base["evaluations"]["capitalization"]
    assert base_ev["status"] == "completed" and base_ev["job_id"].isdigit()
    assert not any(x.startswith("--dependency") for a in submitted
                   if f"--job-name={base_ev['job_name']}" in a for x in a)


def test_failed_finetune_blocks_its_evaluations_and_slurm_cancels_them(
        tmp_path: Path, calls: Calls) -> None:
    name = fresh("fail_blocks_slurm")
    repo = job_repo(tmp_path / "repo", files=(*LOCAL_FILES, f"sites/{SITE}.yaml"),
                    plans={name: failing_plan(name, SITE)},
                    texts={"models.yaml": MISSING_MODEL})
    assert main(["-C", str(repo), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics only
    weightless_model(repo, "tiny-llama-missing")
    assert main(["-C", str(repo), "run", name, "--poll", "1"]) == 1  # a step failed

    runs = yaml.safe_load((repo / "experiments" / name / STATUS_FILE).read_text())["runs"]
    bad, good = runs["tiny-llama-missing"], runs["tiny-llama"]
    assert (bad["finetune"]["status"], bad["finetune"]["reason"]) == ("failed", "NonZeroExitCode")
    blocked = bad["evaluations"]["capitalization_epoch_0"]
    assert (blocked["status"], blocked["reason"]) == ("blocked", "DependencyFailed")
    # It was submitted, chained; SLURM itself cancelled it (nobody ran scancel).
    assert blocked["job_id"].isdigit() and calls.of("scancel") == []
    assert sacct_state(blocked["job_id"]).split("|")[1] == "CANCELLED"
    assert good["finetune"]["status"] == "completed"
    assert good["evaluations"]["capitalization_epoch_0"]["status"] == "completed"


def test_scancel_is_cancelled_timeout_is_failed_then_retry_and_cancel(
        tmp_path: Path, calls: Calls, capsys: pytest.CaptureFixture[str]) -> None:
    name = fresh("long_runs")
    plan = (REPO / "experiments" / DEMO / "experiment.yaml").read_text()
    for old, new in ((f"name: {DEMO}", f"name: {name}"), ("site: local", "site: one-minute"),
                     ("epochs: 3", "epochs: 500"), ("controls: true", "controls: false")):
        assert old in plan
        plan = plan.replace(old, new)
    repo = job_repo(tmp_path / "repo", plans={name: plan})
    site = (REPO / "sites" / f"{SITE}.yaml").read_text()
    assert "time_limit_max_minutes: 60" in site
    (repo / "sites" / "one-minute.yaml").write_text(  # SLURM's shortest limit: one minute
        site.replace("time_limit_max_minutes: 60", "time_limit_max_minutes: 1"))
    assert main(["-C", str(repo), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics only
    ws = Workspace(repo)

    def ft(status: StatusFile, run: str) -> str:
        return status.step(run, None).status

    status = cycle_until(ws, name, "one-minute", lambda s: ft(s, "tiny-llama_rank8") == "running"
                         and ft(s, "tiny-llama_rank32") == "running", 60)
    cancelled_id = status.step("tiny-llama_rank8", None).job_id
    assert cancelled_id
    subprocess.run(["scancel", cancelled_id], check=True)  # by hand, outside tunegit
    status = cycle_until(ws, name, "one-minute",
                         lambda s: ft(s, "tiny-llama_rank32") not in ("submitted", "running")
                         and ft(s, "tiny-llama_rank8") != "running", 180)
    r8, r32 = status.runs["tiny-llama_rank8"], status.runs["tiny-llama_rank32"]
    assert (r8.finetune.status, r8.finetune.reason) == ("cancelled", "CancelledByUser")
    assert (r32.finetune.status, r32.finetune.reason) == ("failed", "TimeLimit")
    assert r32.finetune.elapsed_s and r32.finetune.elapsed_s >= 60
    for record in (r8, r32):
        ev = record.evaluations["capitalization_epoch_499"]
        assert (ev.status, ev.reason) == ("blocked", "DependencyFailed")

    # tunegit retry asks (retry.yaml); the next cycle makes a new attempt under a new name,
    # and the old record is kept.
    args, parser = ["-C", str(repo)], commands()
    assert retry_cmd.main(parser.parse_args([*args, "retry", name, "tiny-llama_rank8"])) == 0
    assert status_of(repo, name).step("tiny-llama_rank8", None).status == "cancelled"
    status = cycle_until(ws, name, "one-minute",
                         lambda s: s.step("tiny-llama_rank8", None).attempt == 2, 30)
    step = status.step("tiny-llama_rank8", None)
    assert (step.attempt, step.job_name) == (2, job_name(name, "tiny-llama_rank8", "ft", 2))
    assert step.attempts[0]["job_id"] == cancelled_id
    assert step.requested is not None and step.requested["reason"] == (
        "attempt 1 cancelled (CancelledByUser)")
    status = cycle_until(ws, name, "one-minute",
                         lambda s: s.step("tiny-llama_rank8", None).status != "pending", 30)
    new_id = status.step("tiny-llama_rank8", None).job_id
    assert new_id and new_id != cancelled_id
    assert any(f"--job-name={job_name(name, 'tiny-llama_rank8', 'ft', 2)}" in a
               for a in calls.of("sbatch"))
    assert status.step("tiny-llama_rank8", "capitalization_epoch_499").job_name == (
        job_name(name, "tiny-llama_rank8", "capitalization_epoch_499", 2))

    # tunegit cancel: scancel through the executor, recorded as cancelled by the user.
    assert cancel_cmd.main(parser.parse_args(
        [*args, "cancel", name, "--site", "one-minute"])) == 0
    status = status_of(repo, name)
    step = status.step("tiny-llama_rank8", None)
    assert (step.status, step.reason) == ("cancelled", "CancelledByUser")
    assert any(new_id in a for a in calls.of("scancel"))
    assert sacct_state(new_id).split("|")[1].startswith("CANCELLED")


def test_run_backs_off_while_the_scheduler_does_not_answer_and_never_fails_a_job(
        tmp_path: Path, calls: Calls, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A fake squeue fails the first two polls (the live controller cannot be made to fail on
    demand without breaking the other tests); then the real one answers."""
    counter = tmp_path / "squeue-calls"
    real = shutil.which("squeue")
    wrapper = tmp_path / "slurm-wrappers" / "squeue"
    wrapper.write_text(
        f'#!/bin/bash\necho x >> {counter}\n'
        f'if [ "$(wc -l < {counter})" -le 2 ]; then\n'
        '  echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2\n'
        "  exit 1\nfi\n"
        f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 3:
            raise KeyboardInterrupt  # stop watching once the jobs are in
        time.sleep(0.2)

    monkeypatch.setattr(run_cmd, "time", SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    name = fresh("backoff")
    repo = job_repo(tmp_path / "repo", files=(*LOCAL_FILES, f"sites/{SITE}.yaml"),
                    plans={name: failing_plan(name, SITE)},
                    texts={"models.yaml": MISSING_MODEL})
    for model in ("tiny-llama", "tiny-llama-missing"):  # jobs that start, then fail
        weightless_model(repo, model)
    assert main(["-C", str(repo), "run", name, "--poll", "1"]) == 130
    err = capsys.readouterr().err
    assert err.count("scheduler not answering") == 2
    assert [round(d) for d in delays] == [2, 4, 1]  # doubled per failed poll, then back
    assert delays[0] != 2.0  # jittered
    status = status_of(repo, name)
    assert all(s.status != "pending" and s.reason != "SubmitFailed" for _, _, s in status.steps())
    # Each job submitted once, after squeue answered: one sbatch per SLURM job (an array's
    # tasks share one), however the fine-tunes were grouped by their resources.
    slurm_jobs = {s.job_id.split("_")[0] for _, _, s in status.steps() if s.job_id}
    assert len(calls.of("sbatch")) == len(slurm_jobs) >= 3
    parser = commands()
    assert cancel_cmd.main(parser.parse_args(["-C", str(repo), "cancel", name])) == 0
