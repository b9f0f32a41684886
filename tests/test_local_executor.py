"""The local executor with real processes, and the engine on the local site with a fine-tune
that really fails (its base model directory does not exist, so `tune` exits non-zero)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from planfixtures import LOCAL_FILES, WHOLE_EPOCH, make_repo, tiny_plan, weightless_model
from tunegit.cli import main
from tunegit.core import states
from tunegit.core.observe import FINISHED_JOB_STATES, status_from_observation
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.executors.base import JobObservation, JobPlan
from tunegit.executors.local import LocalExecutor
from tunegit.files import read_status, utc_now
from tunegit.loop.engine import cycle

TRAIN = pytest.mark.skipif(importlib.util.find_spec("torchtune") is None
                           or importlib.util.find_spec("inspect_ai") is None,
                           reason="needs the train extra (pip install -e '.[train]')")


# The lab's own catalog entry (models.yaml) for a model no site has the weights of: the
# catalog knows it, so the plan checks; its directory holds only a config.json
# (weightless_model), so the preflight passes and its fine-tune fails as soon as it starts.
MISSING_MODEL = """\
models:
  - ids: [tunegit/tiny-llama-missing]
    family: llama3_2
    params_b: 1.24
    lora_builder: torchtune.models.llama3_2.lora_llama3_2_1b
    tokenizer:
      component: torchtune.models.llama3.llama3_tokenizer
      files: {path: original/tokenizer.model}
    model_type: LLAMA3_2
    checkpoint_files: [model.safetensors]
    max_seq_len: 131072
    checkpoint_gib: 2.4
    hf_model_type: llama
"""


def failing_plan(name: str, site: str) -> str:
    """Two fine-tunes; the second names a model (known from the lab's catalog,
    MISSING_MODEL, to be written as models.yaml) whose directory holds no weights (make it
    with ``weightless_model(repo, "tiny-llama-missing")``)."""
    return tiny_plan(name, question="Does a failed fine-tune block only its own evaluations?",
                     site=site, models=["tunegit/tiny-llama", "tunegit/tiny-llama-missing"],
                     factors=None, run_name="{model}", training=WHOLE_EPOCH)


def job_repo(dest: Path, *, files: tuple[str, ...] = LOCAL_FILES, **repo: Any) -> Path:
    """A git experiments repository in ``dest`` (make_repo) for jobs that really run:
    ``automation/`` is linked in, as the rendered job scripts put <repo>/automation on
    PYTHONPATH (the product repo holds the package)."""
    return make_repo(dest, files=files, link_automation=True,
                     gitignore=".tunegit/\nautomation\n", commit="plans", **repo)


def job(tmp_path: Path, body: str) -> JobPlan:
    name = f"tg.test.{uuid.uuid4().hex[:8]}.ft"
    workdir = tmp_path / name
    workdir.mkdir()
    script = workdir / "job.sh"
    script.write_text(f"#!/bin/bash\n{body}\n")
    return JobPlan(name, script, workdir, workdir / "logs" / "job.log")


def wait(executor: LocalExecutor, job_id: str, until: frozenset[str],
         timeout_s: float = 30.0) -> JobObservation:
    deadline = time.monotonic() + timeout_s
    while True:
        obs = executor.poll([job_id]).jobs.get(job_id)
        if obs is not None and obs.state in until:
            return obs
        assert time.monotonic() < deadline, f"{job_id}: {obs}"
        time.sleep(0.1)


FINISHED = frozenset(FINISHED_JOB_STATES)
RUNNING = frozenset({states.JOB_RUNNING})


def test_a_job_runs_and_completes_with_exit_0(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, 'echo "hello from $PWD"')
    job_id = executor.submit([spec])[spec.name]
    obs = wait(executor, job_id, FINISHED)
    assert (obs.state, obs.exit_code, obs.name) == (states.JOB_COMPLETED, 0, spec.name)
    assert obs.start and obs.end and obs.elapsed_s is not None
    assert spec.log.read_text() == f"hello from {spec.workdir}\n"
    assert status_from_observation(obs)[0] == states.COMPLETED


def test_a_failing_job_is_failed_with_its_exit_code(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "echo boom >&2; exit 3")
    obs = wait(executor, executor.submit([spec])[spec.name], FINISHED)
    assert (obs.state, obs.exit_code, obs.reason) == (states.JOB_FAILED, 3, "NonZeroExitCode")
    assert status_from_observation(obs)[:2] == (states.FAILED, states.REASON_NON_ZERO_EXIT)
    assert "boom" in spec.log.read_text()


def test_a_job_killed_with_kill_9_wrapper_and_all_is_process_lost(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "sleep 60")
    job_id = executor.submit([spec])[spec.name]
    wait(executor, job_id, RUNNING)
    # The wrapper leads the job's process group.
    os.killpg(recorded_pid(tmp_path / "state" / job_id), signal.SIGKILL)
    obs = wait(executor, job_id, FINISHED, timeout_s=10)
    assert (obs.state, obs.reason, obs.exit_code) == (states.JOB_FAILED, "ProcessLost", None)
    assert status_from_observation(obs)[:2] == (states.FAILED, "ProcessLost")


def test_cancel_ends_cancelled(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "sleep 60")
    job_id = executor.submit([spec])[spec.name]
    wait(executor, job_id, RUNNING)
    executor.cancel([job_id])
    obs = wait(executor, job_id, FINISHED, timeout_s=10)
    assert obs.state == states.JOB_CANCELLED
    assert status_from_observation(obs)[:2] == (states.CANCELLED, states.REASON_CANCELLED)
    pid = recorded_pid(tmp_path / "state" / job_id)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid):
        assert time.monotonic() < deadline, "the cancelled job's process is still alive"
        time.sleep(0.1)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def recorded_pid(state: Path) -> int:
    """The job's pid as the executor recorded it (the first field of its pid file)."""
    return int((state / "pid").read_text().split()[0])


# Run in a child process: submit one job, and die by SIGKILL the instant the job's process has
# started, before the executor's next line. No signal sent from outside can be timed that
# precisely, so the child wraps subprocess.Popen (the job itself is started for real).
KILLED_LAUNCHER = """
import os, signal, subprocess, sys
from pathlib import Path
from tunegit.executors.base import JobPlan
from tunegit.executors.local import LocalExecutor

real_popen = subprocess.Popen

def popen_then_die(*args, **kwargs):
    real_popen(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

subprocess.Popen = popen_then_die
state, name, script, workdir, log = sys.argv[1:]
LocalExecutor(Path(state)).submit([JobPlan(name, Path(script), Path(workdir), Path(log))])
"""


def test_a_launcher_killed_right_after_starting_a_job_leaves_it_findable(tmp_path: Path) -> None:
    """The launch is recorded (name, script) before the process starts: a restart finds the
    job by its name and adopts it, instead of starting it a second time."""
    spec = job(tmp_path, 'echo started >> "$PWD/starts"; sleep 30')
    child = subprocess.run([sys.executable, "-c", KILLED_LAUNCHER, str(tmp_path / "state"),
                            spec.name, str(spec.script), str(spec.workdir), str(spec.log)],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    fresh = LocalExecutor(tmp_path / "state")
    answer = fresh.poll([], names=[spec.name])
    assert list(answer.names) == [spec.name], "the started job cannot be found by its name"
    job_id = answer.names[spec.name]
    wait(fresh, job_id, RUNNING)
    starts = spec.workdir / "starts"
    deadline = time.monotonic() + 30
    while not starts.exists():  # the job's own first line has run
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    fresh.cancel([job_id])
    assert wait(fresh, job_id, FINISHED, timeout_s=10).state == states.JOB_CANCELLED
    assert starts.read_text() == "started\n"  # it ran once


def test_a_dead_job_whose_pid_was_reused_is_lost_and_cancel_spares_the_new_owner(
        tmp_path: Path) -> None:
    """The kernel hands a dead job's pid to a new process sooner or later. That cannot be
    made to happen on demand, so the test rewrites the job's pid record to name an unrelated
    live process (everything else about the record is the job's own)."""
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "sleep 60")
    job_id = executor.submit([spec])[spec.name]
    wait(executor, job_id, RUNNING)
    state = tmp_path / "state" / job_id
    os.killpg(recorded_pid(state), signal.SIGKILL)  # the job dies without an exit code
    wait(executor, job_id, FINISHED, timeout_s=10)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        fields = (state / "pid").read_text().split()
        (state / "pid").write_text(" ".join([str(stranger.pid), *fields[1:]]) + "\n")
        obs = executor.poll([job_id]).jobs[job_id]
        assert (obs.state, obs.reason) == (states.JOB_FAILED, "ProcessLost")
        executor.cancel([job_id])
        time.sleep(0.5)
        assert stranger.poll() is None, "cancel signalled the process that got the job's pid"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_job_whose_directory_was_deleted_is_reported_lost_saying_where(
        tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "sleep 60")
    job_id = executor.submit([spec])[spec.name]
    wait(executor, job_id, RUNNING)
    executor.cancel([job_id])
    shutil.rmtree(tmp_path / "state" / job_id)
    answer = executor.poll([job_id])
    assert answer.jobs == {}
    assert answer.lost == {job_id: f"job {job_id} has no directory in {tmp_path / 'state'} "
                                   "(its outputs were deleted?)"}


def test_a_step_whose_job_outputs_were_deleted_fails_as_job_lost_after_the_grace(
        tmp_path: Path) -> None:
    """It stayed `submitted` for ever: its job was never observed again, nor failed."""
    repo = job_repo(tmp_path / "repo", plans={"lost": tiny_plan("lost")})
    weightless_model(repo)
    ws = Workspace(repo)
    make = executor_factory(ws)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    at = [(start + dt.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (0, 10)]
    path = repo / "experiments" / "lost" / STATUS_FILE

    def step_after_cycle(now: str) -> Any:
        assert cycle(ws, ["lost"], now=now, plan_commit=None, executor_for=make).errors == ()
        status = read_status(path)
        assert status is not None
        return status.step("tiny-llama_rank8", None)

    submitted = step_after_cycle(at[0])
    assert submitted.status == states.SUBMITTED
    make(ws.load_site("local")).cancel([submitted.job_id])
    jobs = repo / ".tunegit" / "outputs" / ".tunegit-jobs"
    shutil.rmtree(jobs)  # the outputs are deleted, the job's record with them
    missing = step_after_cycle(at[0])
    where = f"job {submitted.job_id} has no directory in {jobs} (its outputs were deleted?)"
    assert (missing.status, missing.missing_since) == (states.SUBMITTED, at[0])
    lost = step_after_cycle(at[1])
    assert (lost.status, lost.reason, lost.message) == (
        states.FAILED, states.REASON_JOB_LOST,
        f"{where}: not found since {at[0]} (log: {submitted.log})")


def test_a_fresh_executor_finds_jobs_by_name(tmp_path: Path) -> None:
    first = LocalExecutor(tmp_path / "state")
    spec = job(tmp_path, "sleep 1")
    job_id = first.submit([spec])[spec.name]
    fresh = LocalExecutor(tmp_path / "state")
    answer = fresh.poll([], names=[spec.name, "tg.test.never-submitted.ft"])
    assert answer.ok and answer.names == {spec.name: job_id}
    assert answer.origins == {spec.name: str(spec.script)}  # to tell it from a namesake's
    assert wait(fresh, job_id, FINISHED).state == states.JOB_COMPLETED


def test_experiments_whose_names_join_alike_each_run_their_own_job(tmp_path: Path) -> None:
    """Experiment `x.y` run `z_8` and experiment `x` run `y.z_8`: names joined by dots were
    both `tg.x.y.z_8.ft`, and the second experiment adopted the first's job as its own."""
    runs = {"x.y": "z_8", "x": "y.z_8"}
    plans = {name: tiny_plan(name, run_name=run.replace("8", "{lora_rank}"))
             for name, run in runs.items()}
    repo = job_repo(tmp_path / "repo", plans=plans)
    weightless_model(repo)
    ws = Workspace(repo)
    make = executor_factory(ws)
    steps = {}
    for name, run in runs.items():
        result = cycle(ws, [name], now=utc_now(), plan_commit=None, executor_for=make)
        assert result.errors == ()
        status = read_status(repo / "experiments" / name / STATUS_FILE)
        assert status is not None
        steps[name] = status.step(run, None)
    for step in steps.values():
        make(ws.load_site("local")).cancel([step.job_id or ""])
    first, second = steps["x.y"], steps["x"]
    assert first.status == second.status == states.SUBMITTED
    assert first.job_id != second.job_id and first.job_name != second.job_name
    assert second.message is None  # submitted, not "found in the scheduler by its job name"


@pytest.mark.slow
@pytest.mark.train
@TRAIN
def test_failed_finetune_blocks_its_evaluations_while_the_other_run_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "fail_blocks_local"
    repo = job_repo(tmp_path / "repo", plans={name: failing_plan(name, "local")},
                    texts={"models.yaml": MISSING_MODEL})
    assert main(["-C", str(repo), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics only
    weightless_model(repo, "tiny-llama-missing")
    assert main(["-C", str(repo), "run", name, "--poll", "1"]) == 1  # a step failed
    printed = capsys.readouterr().out
    assert "tiny-llama-missing fine-tuning: running -> failed: NonZeroExitCode" in printed

    runs = yaml.safe_load((repo / "experiments" / name / "runs_status.yaml").read_text())["runs"]
    bad, good = runs["tiny-llama-missing"], runs["tiny-llama"]
    assert (bad["finetune"]["status"], bad["finetune"]["reason"]) == ("failed", "NonZeroExitCode")
    assert bad["finetune"]["exit_code"] != 0
    # Its cause, from torchtune's traceback in the job's log, and where that log is.
    ft, model = bad["finetune"], repo / ".tunegit/models/tiny-llama-missing"
    cause = f"ValueError: No file with name: model.safetensors found in {model}."
    assert ft["message"] == (f"job {ft['job_id']} exited with code {ft['exit_code']}: {cause} "
                             f"(log: {ft['log']})")
    assert f"running -> failed: NonZeroExitCode: {ft['message']}\n" in printed
    blocked = bad["evaluations"]["capitalization_epoch_0"]
    assert (blocked["status"], blocked["reason"]) == ("blocked", "DependencyFailed")
    assert blocked["message"] == "fine-tuning failed (NonZeroExitCode); nothing to evaluate"
    assert blocked["job_id"] is None  # never submitted
    assert good["finetune"]["status"] == "completed"
    assert good["finetune"]["metrics"]["tokens_per_s"] > 0  # from torchtune's DiskLogger file
    ev = good["evaluations"]["capitalization_epoch_0"]
    assert ev["status"] == "completed" and 0.0 <= ev["score"] <= 1.0


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, under: Path, writes: int) -> None:
    """FAKED: a full disk cannot be produced on demand without privileges (no tmpfs mount
    here), so writes below ``under`` raise ENOSPC, as the kernel's would, after ``writes``
    of them succeed. Everything else is real."""
    import errno
    real = Path.write_text
    count = {"n": 0}

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if str(self).startswith(str(under)):
            count["n"] += 1
            if count["n"] > writes:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("writes", [0, 2, 4])
def test_a_full_disk_while_recording_a_launch_leaves_nothing_half_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    from tunegit.executors.base import SubmitError
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    first, second = job(tmp_path, "exit 0"), job(tmp_path, "exit 0")
    done = executor.submit([first])
    _full_disk_after(monkeypatch, state, writes)
    with pytest.raises(SubmitError, match="No space left on device") as caught:
        executor.submit([second, job(tmp_path, "exit 0")])
    assert caught.value.submitted == {}
    left = sorted(p.name for p in state.iterdir())
    assert left == sorted([done[first.name], "by-name"]), left  # no draft, no orphan job dir
    assert sorted(p.name for p in (state / "by-name").iterdir()) == [first.name]


def test_a_job_whose_log_cannot_be_opened_is_not_left_recorded(tmp_path: Path) -> None:
    """A real fault: the log's directory is a file."""
    from tunegit.executors.base import SubmitError
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    spec = job(tmp_path, "exit 0")
    spec.log.parent.parent.mkdir(parents=True, exist_ok=True)
    spec.log.parent.write_text("not a directory\n")
    with pytest.raises(SubmitError, match="could not start the job"):
        executor.submit([spec])
    assert not [p for p in state.iterdir() if p.name.startswith("local-")]
    assert not list((state / "by-name").iterdir())


def test_run_on_a_full_disk_says_so_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "lab", files=LOCAL_FILES, plans={"exp": tiny_plan("exp")})
    weightless_model(root)
    _full_disk_after(monkeypatch, root / ".tunegit" / "outputs" / ".tunegit-jobs", 0)
    code = main(["-C", str(root), "run", "exp", "--no-wait"])
    captured = capsys.readouterr()
    assert code != 3 and "Traceback" not in captured.err
    assert "No space left on device" in captured.err + captured.out
    status = read_status(root / "experiments" / "exp" / STATUS_FILE)
    assert status is not None
    assert not [s for _, _, s in status.steps() if s.status == states.SUBMITTED]
    jobs = root / ".tunegit" / "outputs" / ".tunegit-jobs"
    assert not [p for p in jobs.iterdir() if p.name.startswith(("local-", ".local-"))]
