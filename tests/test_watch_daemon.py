"""`tunegit watch` on real git and a real watchdog observer: what wakes it, and what must not.

An idle watcher runs one cycle per --interval; its own fetches, commits and status writes
change .git/ and the checkout every cycle, and must not wake it (they did: `watch` became a
--min-gap poll loop, bench/PERFORMANCE.md). The wake file and a local job's end do wake it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakes import PendingExecutor
from gitfixtures import clone, commit_all, git
from planfixtures import tiny_plan
from tunegit.edges.workspace import Workspace
from tunegit.executors.local import JOBS_DIR
from tunegit.loop.cycle import WatchConfig
from tunegit.loop.daemon import WAKE_FILE, watch, watch_paths

pytestmark = pytest.mark.usefixtures("git_env")

MIN_GAP_S = 0.2  # a self-wake would show as a cycle every 0.2 s


class Daemon:
    """`watch` in a thread with a long interval; its cycle summaries are collected."""

    def __init__(self, root: Path):
        self.root = root
        self.lines: list[str] = []
        self.stop, self.wake = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=watch, kwargs={
            "config": WatchConfig(root, backoff_s=0.0), "interval_s": 600.0,
            "min_gap_s": MIN_GAP_S, "stop": self.stop, "wake": self.wake,
            "log": self.lines.append, "executor_for": lambda site: PendingExecutor()},
            daemon=True)

    def cycles(self) -> int:
        return len(self.lines)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()


@pytest.fixture
def daemon(origin: Path, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(clone(origin, tmp_path / "watcher", name="tunegit watcher"))
    d.thread.start()
    assert d.wait_for(lambda: d.cycles() == 1), "the first cycle did not run"
    yield d
    d.stop.set()
    d.wake.set()
    d.thread.join(timeout=30)
    assert not d.thread.is_alive()


def test_an_idle_watcher_does_not_wake_itself(daemon: Daemon) -> None:
    time.sleep(15 * MIN_GAP_S)  # its first cycle fetched: .git/FETCH_HEAD, index, refs moved
    assert daemon.cycles() == 1, daemon.lines
    (daemon.root / ".git" / WAKE_FILE).touch()  # woken, but the branch has not moved
    time.sleep(10 * MIN_GAP_S)
    assert daemon.cycles() == 1, daemon.lines


def push_plan(origin: Path, tmp_path: Path, name: str) -> None:
    laptop = tmp_path / "laptop"
    if not laptop.exists():
        clone(origin, laptop)
    git(laptop, "pull", "-q", "origin", "main")
    plan = laptop / "experiments" / name / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan(name))
    commit_all(laptop, f"plan {name}")
    git(laptop, "push", "-q", "origin", "HEAD:main")


def test_a_post_receive_hook_wakes_the_watcher_for_merges_not_for_its_own_pushes(
        daemon: Daemon, origin: Path, tmp_path: Path) -> None:
    hook = origin / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\ntouch '{daemon.root / '.git' / WAKE_FILE}'\n")
    hook.chmod(0o755)
    push_plan(origin, tmp_path, "woken")
    assert daemon.wait_for(lambda: daemon.cycles() == 2), daemon.lines
    assert "1 experiment(s)" in daemon.lines[1], daemon.lines
    assert "committed" in daemon.lines[1], daemon.lines
    time.sleep(10 * MIN_GAP_S)  # its status push ran the hook too: that wake is dropped
    assert daemon.cycles() == 2, daemon.lines
    assert git(origin, "log", "-1", "--format=%s", "main").startswith("status(woken)")
    hook.unlink()
    push_plan(origin, tmp_path, "second")
    time.sleep(5 * MIN_GAP_S)
    assert daemon.cycles() == 2, "a push the watcher was not told of must wait for the timer"
    (daemon.root / ".git" / WAKE_FILE).touch()  # an existing file: only its times change
    assert daemon.wait_for(lambda: daemon.cycles() == 3), daemon.lines
    assert "committed" in daemon.lines[2], daemon.lines


def test_a_local_job_ending_wakes_the_watcher(daemon: Daemon) -> None:
    paths = watch_paths(Workspace(daemon.root), daemon.root / ".git")
    jobs = [w.directory for w in paths if w.directory.name == JOBS_DIR]
    assert jobs, "the local site's job directory is not watched"
    state = jobs[0] / "job-1"
    state.mkdir()
    (state / "pid").write_text("1\n")  # a job starting writes files: no cycle for those
    time.sleep(5 * MIN_GAP_S)
    assert daemon.cycles() == 1, daemon.lines
    (state / "rc.tmp").write_text("0\n")
    (state / "rc.tmp").rename(state / "rc")  # the wrapper's last act
    assert daemon.wait_for(lambda: daemon.cycles() == 2), daemon.lines
