"""`tunegit run` takes the checkout's lock, the one the watcher's cycles take: while another
process holds it, a run waits, says so, and submits nothing; two runs in one checkout
never submit a step twice. Real processes, a real git checkout, the real local executor
(the model directory holds only a config.json, so each job really starts and fails fast)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitfixtures import AUTOMATION
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan, weightless_model
from tunegit.core.status import parse
from tunegit.edges.workspace import STATUS_FILE
from tunegit.executors.local import JOBS_DIR
from tunegit.loop.cycle import LOCK_FILE

pytestmark = pytest.mark.usefixtures("git_env")


def lab(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "lab", files=LOCAL_FILES, gitignore=GITIGNORE,
                     plans={"exp": tiny_plan("exp", factors={"lora_rank": [8, 16]})},
                     commit="Plan exp")
    weightless_model(repo)
    return repo


def start_run(repo: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(AUTOMATION)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "tunegit", "-C", str(repo), "run",
                                 "exp", "--no-wait"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)


def wait_for(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_run_waits_for_the_lock_another_cycle_holds_and_submits_nothing_meanwhile(
        tmp_path: Path) -> None:
    repo = lab(tmp_path)
    log = tmp_path / "run.log"
    with (repo / ".git" / LOCK_FILE).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a watcher's cycle in this checkout
        run = start_run(repo, log)
        assert wait_for(lambda: "waiting: another `tunegit run` or the watcher" in
                        log.read_text()), log.read_text()
        time.sleep(1.0)
        assert run.poll() is None  # still waiting
        assert not (repo / "experiments" / "exp" / STATUS_FILE).exists()  # nothing decided
        fcntl.flock(held, fcntl.LOCK_UN)
    assert run.wait(timeout=120) == 0, log.read_text()
    status = parse((repo / "experiments" / "exp" / STATUS_FILE).read_text())
    assert all(step.job_id for run_name, key, step in status.steps() if key is None)


def test_two_runs_at_once_in_one_checkout_submit_each_step_once(tmp_path: Path) -> None:
    repo = lab(tmp_path)
    runs = [start_run(repo, tmp_path / f"run{i}.log") for i in range(2)]
    for i, run in enumerate(runs):
        assert run.wait(timeout=180) == 0, (tmp_path / f"run{i}.log").read_text()
    jobs_root = repo / ".tunegit" / "outputs" / JOBS_DIR
    index = jobs_root / "by-name"
    names = sorted(p.name for p in index.iterdir()) if index.is_dir() else []
    jobs = [p for p in jobs_root.iterdir() if p.is_dir() and p.name != "by-name"]
    status = parse((repo / "experiments" / "exp" / STATUS_FILE).read_text())
    finetunes = [step for _, key, step in status.steps() if key is None]
    assert len(finetunes) == 2 and all(step.job_id for step in finetunes)
    # Each step's job was started once: as many job directories as names submitted.
    assert names and len(jobs) == len(names), (jobs, names)
