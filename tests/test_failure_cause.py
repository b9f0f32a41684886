"""Failures carry their cause: the exception line of a failed job's log (or the scheduler's
word) in runs_status.yaml, in the watcher's status commit and in `tunegit status`.

The cause is read from real logs (tests/fixtures/logs: inspect-ai and torchtune failing for
real); end to end, an evaluation task that raises KeyError runs through the watcher on the
local executor and on the real local SLURM."""

from __future__ import annotations

import importlib.util
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitfixtures import AUTOMATION, clone, commit_all, git, tunegit
from planfixtures import REPO, tiny_plan
from test_slurm_executor import cluster_state
from tunegit.core import states
from tunegit.core.cause import CAUSE_MAX, failure_cause
from tunegit.core.expand import expand
from tunegit.core.reconcile import decide
from tunegit.core.records import Transition
from tunegit.core.status import Step, initial
from tunegit.edges.gitstore import status_message
from tunegit.edges.workspace import STATUS_FILE
from tunegit.executors.base import JobObservation, Poll
from tunegit.spec.plan import Plan

LOGS = Path(__file__).parent / "fixtures" / "logs"
CUDA_OOM_LOG = Path(__file__).parent / "fixtures" / "slurm" / "log_cudaoom.txt"
KEYERROR = "KeyError: 'answer'"


def log(name: str) -> str:
    return (LOGS / name).read_text()


# --- the cause, from a log's tail (pure) -------------------------------------------------------

@pytest.mark.parametrize(("text", "cause"), [
    pytest.param(log("inspect-task-keyerror.log"), KEYERROR,
                 id="inspect: a task's KeyError, after an exception group and a chained traceback"),
    pytest.param(log("inspect-scorer-typeerror.log"),
                 "TypeError: _compare() missing 1 required positional argument: 'target'",
                 id="inspect: a boxed traceback, then tunegit's own check lines"),
    pytest.param(log("torchtune-missing-config.log"),
                 "FileNotFoundError: [Errno 2] No such file or directory: "
                 "'__REPO__/.tunegit/models/tiny-llama-missing/config.json'",
                 id="torchtune: a model directory without config.json"),
    pytest.param(CUDA_OOM_LOG.read_text(),
                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                 id="a CUDA out-of-memory line without its traceback"),
])
def test_the_cause_is_the_exception_line_of_the_last_traceback(text: str, cause: str) -> None:
    assert failure_cause(text) == cause


def test_a_tail_that_starts_inside_the_last_traceback_still_finds_its_exception_line() -> None:
    text = log("inspect-task-keyerror.log")
    cut = text[text.rindex("Traceback (most recent call last):") + 40:]
    assert "Traceback" not in cut
    assert failure_cause(cut) == KEYERROR


def test_an_exception_group_alone_gives_its_inner_exception() -> None:
    text = log("inspect-task-keyerror.log")
    group = text[:text.index("During handling of the above exception")]
    assert failure_cause(group) == KEYERROR


def test_torchrun_rank_prefixes_are_dropped() -> None:
    # torchrun prefixes each line of a worker's traceback with its rank (written by hand in
    # that format: no multi-process torchtune run is possible on this machine).
    text = ("[rank0]: Traceback (most recent call last):\n"
            '[rank0]:   File "recipe.py", line 3, in <module>\n'
            "[rank0]:     main()\n"
            "[rank0]: ValueError: batch_size must be > 0\n")
    assert failure_cause(text) == "ValueError: batch_size must be > 0"


def test_without_a_traceback_the_last_error_line_then_the_last_line() -> None:
    shell = subprocess.run(["bash", "-c", "echo starting; no-such-program-here; echo cleanup"],
                           capture_output=True, text=True, check=False)
    text = shell.stdout + shell.stderr  # as a job's log has them: one file
    assert failure_cause(text) == "bash: line 1: no-such-program-here: command not found"
    stepd = "slurmstepd: error: Detected 1 oom_kill event in StepId=12.batch."
    assert failure_cause(f"step 40\n{stepd}\nstep 41\n") == stepd
    assert failure_cause("loading\nfailing  \n\n") == "failing"
    assert failure_cause("") == failure_cause("\n\n") == ""


def test_a_long_exception_line_is_kept_whole_up_to_the_cap_and_never_spans_lines() -> None:
    long_line = "ValueError: " + "x" * (CAUSE_MAX - 20)
    assert failure_cause(f"Traceback (most recent call last):\n  f()\n{long_line}\n") == long_line
    huge = failure_cause("RuntimeError: " + "y" * 5000)
    assert len(huge) == CAUSE_MAX and huge.endswith("…")
    forged = failure_cause("KeyError: 'a\x1b[31m'\n")
    assert "\x1b" not in forged and forged.startswith("KeyError: 'a")


# --- the cause in the status and in the commit (pure reconcile) --------------------------------

RUN, KEY = "tiny-llama_base", "capitalization"
EXPANSION = expand(Plan.model_validate({
    "name": "exp", "question": "q", "models": ["tiny-llama"],
    "dataset": {"path": "tasks/capitalization/input/words_5L_80P_200.json"},
    "controls": True, "training": {"epochs": 1},
    "evaluation": {"tasks": [{"name": "capitalization",
                              "script": "tasks/capitalization/eval.py"}]}}))
LOG = "outputs/exp/tiny-llama_base/logs/capitalization.log"


def failed_once(observation: JobObservation, log_text: str | None) -> tuple[Step, Transition]:
    before = initial(EXPANSION, "exp").with_step(RUN, KEY, Step(
        states.RUNNING, job_id="7", job_name="tg:exp:tiny-llama_base:capitalization", attempt=1,
        last_updated="2026-01-01T00:00:00Z", log=LOG))
    logs = {} if log_text is None else {"7": log_text}
    d = decide(EXPANSION, before, Poll({"7": observation}, {}), experiment="exp",
               now="2026-01-01T00:01:00Z", capacity=None, dependencies=True, logs=logs)
    [transition] = [t for t in d.transitions if t.key == KEY]
    return d.status.step(RUN, KEY), transition


def test_a_job_that_raised_records_its_exception_and_its_log_and_commits_them() -> None:
    step, transition = failed_once(JobObservation("7", states.JOB_FAILED, "NonZeroExitCode", 1),
                                   log("inspect-task-keyerror.log"))
    message = f"job 7 exited with code 1: {KEYERROR} (log: {LOG})"
    assert (step.status, step.reason, step.message) == (states.FAILED, "NonZeroExitCode", message)
    assert transition == Transition("exp", RUN, KEY, states.RUNNING, states.FAILED, "7",
                                    "NonZeroExitCode", message)
    body = status_message([transition], None).split("\n\n")[1]
    assert body == (f"exp/{RUN} {KEY}: running -> failed (job 7) [NonZeroExitCode]: {message}")


@pytest.mark.parametrize(("state", "reason", "said"), [
    (states.JOB_TIMEOUT, states.REASON_TIMEOUT, "hit its time limit after 61 s (TIMEOUT)"),
    (states.JOB_OUT_OF_MEMORY, states.REASON_OOM,
     "was killed for using more host memory than it asked for (OUT_OF_MEMORY)"),
    (states.JOB_NODE_FAIL, states.REASON_NODE_FAIL, "was lost when its node failed (NODE_FAIL)"),
    (states.JOB_PREEMPTED, states.REASON_PREEMPTED,
     "was preempted to make room for another job (PREEMPTED)"),
])
def test_a_job_the_scheduler_ended_says_so_in_slurms_words_with_its_log(
        state: str, reason: str, said: str) -> None:
    step, transition = failed_once(JobObservation("7", state, "", None, 61.0),
                                   "slurmstepd: error: *** JOB 7 CANCELLED ***\n")
    assert (step.status, step.reason) == (states.FAILED, reason)
    assert step.message == transition.message == f"job 7 {said} (log: {LOG})"


def test_a_step_that_moves_but_does_not_fail_commits_no_message() -> None:
    before = initial(EXPANSION, "exp").with_step(RUN, KEY, Step(
        states.SUBMITTED, job_id="7", job_name="n", attempt=1, last_updated="t", log=LOG))
    d = decide(EXPANSION, before, Poll({"7": JobObservation("7", states.JOB_RUNNING)}, {}),
               experiment="exp", now="2026-01-01T00:01:00Z", capacity=None, dependencies=True)
    assert [(t.new, t.message) for t in d.transitions] == [(states.RUNNING, None)]


# --- end to end: the watcher, a task that raises KeyError, on each executor -------------------

TRAIN = importlib.util.find_spec("torchtune") is not None and \
    importlib.util.find_spec("inspect_ai") is not None
_DOWN = cluster_state()
BROKEN_TASK = "tasks/broken/eval.py"


def broken_task() -> str:
    """The capitalization task, reading a key its dataset does not have."""
    text = (REPO / "tasks/capitalization/eval.py").read_text()
    assert 'target=r["output"]' in text
    return text.replace('target=r["output"]', 'target=r["answer"]')


def plan_a_broken_evaluation(laptop: Path, name: str, site: str) -> None:
    site_file = laptop / "sites" / f"{site}.yaml"
    if not site_file.exists():
        site_file.write_text((REPO / "sites" / f"{site}.yaml").read_text())
    with site_file.open("a") as f:  # where the job scripts import tunegit from
        f.write(f"environment: {{variables: {{PYTHONPATH: '{AUTOMATION}'}}}}\n")
    (laptop / BROKEN_TASK).parent.mkdir(parents=True)
    (laptop / BROKEN_TASK).write_text(broken_task())
    plan = laptop / "experiments" / name / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan(name, site=site, controls=True, evaluation={"tasks": [
        {"name": "broken", "script": BROKEN_TASK, "task": "capitalization",
         "dataset": "training", "max_tokens": 8}]}))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", f"experiments/{name}"]) == 0
    commit_all(laptop, f"Plan {name}")
    git(laptop, "push", "-q", "origin", "main")


def watch_until_done(watcher: Path, origin: Path, name: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
        status = yaml.safe_load(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}"))
        steps = [s for r in status["runs"].values()
                 for s in (r["finetune"], *r["evaluations"].values())]
        if all(s["status"] in states.TERMINAL_STATES for s in steps):
            return status
        assert time.monotonic() < deadline, yaml.safe_dump(status)
        time.sleep(1)


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.skipif(not TRAIN, reason="needs the train extra (pip install -e '.[train]')")
@pytest.mark.parametrize("site", [
    "local",
    pytest.param("local-slurm", marks=[pytest.mark.slurm,
                                       pytest.mark.skipif(bool(_DOWN), reason=_DOWN)]),
])
def test_a_task_raising_keyerror_shows_it_in_the_status_the_commit_and_tunegit_status(
        site: str, origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Job names are tg:<experiment>:...; squeue remembers finished jobs for MinJobAge, so each
    # run of the test has its own experiment name, or it would adopt an earlier run's jobs.
    name = f"broken_{uuid.uuid4().hex[:6]}"
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "cluster")
    plan_a_broken_evaluation(laptop, name, site)
    assert tunegit(["-C", str(watcher), "tiny-model", "--pretrain-steps", "0"]) == 0
    status = watch_until_done(watcher, origin, name, 420)

    step = status["runs"]["tiny-llama_base"]["evaluations"]["broken"]
    message = f"job {step['job_id']} exited with code 1: {KEYERROR} (log: {step['log']})"
    assert (step["status"], step["reason"], step["message"]) == ("failed", "NonZeroExitCode",
                                                                message)
    assert Path(step["log"]).is_file()
    bodies = git(origin, "log", "--format=%B", "main")
    line = f"{name}/tiny-llama_base broken: "
    committed = [x for x in bodies.splitlines() if x.startswith(line) and "-> failed" in x]
    assert len(committed) == 1, bodies
    assert committed[0].endswith(
        f" -> failed (job {step['job_id']}) [NonZeroExitCode]: {message}"), bodies

    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "status", name]) == 0
    words = " ".join(capsys.readouterr().out.split())  # the reason, wrapped, is read on
    assert f"broken failed {step['job_id']} " in words
    assert f" NonZeroExitCode {message} " in f"{words} "
    assert tunegit(["-C", str(watcher), "logs", f"{name}/tiny-llama_base/broken", "-n", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (f"==> {step['log']} ({name}/tiny-llama_base/broken: failed, "
                          f"job {step['job_id']}; last 3 lines) <==")
    assert printed[1:] == Path(step["log"]).read_text().splitlines()[-3:]
    assert printed[-1] == KEYERROR
