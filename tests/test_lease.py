"""The watcher lease: two watchers on two checkouts of one origin never both act.

Real git (a bare origin, clones), the real engine and local executor, the real CLI in a
subprocess where a watcher must die (`kill -9` at a crash point, before its status push:
the moment another watcher, seeing no submission on the origin, would submit it again).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitfixtures import AUTOMATION, clone, commit_all, git, tunegit
from planfixtures import tiny_plan, weightless_model
from tunegit.edges import lease
from tunegit.edges.gitstore import GitStore
from tunegit.executors.local import JOBS_DIR
from tunegit.loop.cycle import WatchConfig, reconcile_once

pytestmark = pytest.mark.usefixtures("git_env")
T0 = "2026-12-02T10:00:00Z"


def jobs(checkout: Path) -> list[str]:
    root = checkout / ".tunegit" / "outputs" / JOBS_DIR
    return sorted(p.name for p in root.iterdir() if p.name.startswith("local-")) \
        if root.is_dir() else []


def two_watchers(origin: Path, tmp_path: Path) -> tuple[Path, Path]:
    laptop = clone(origin, tmp_path / "laptop")
    plan = laptop / "experiments" / "exp1" / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("exp1"))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", "experiments/exp1"]) == 0
    commit_all(laptop, "Plan exp1")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    watchers = clone(origin, tmp_path / "w1"), clone(origin, tmp_path / "w2")
    for watcher in watchers:
        weightless_model(watcher)  # the preflight finds the model; its job fails in seconds
    return watchers


def test_a_second_watcher_stands_by_while_the_first_holds_the_lease(
        origin: Path, tmp_path: Path) -> None:
    w1, w2 = two_watchers(origin, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(AUTOMATION), "TUNEGIT_CRASH_AT": "before_push"}
    died = subprocess.run([sys.executable, "-m", "tunegit", "-C", str(w1), "reconcile",
                           "--once"], env=env, capture_output=True, text=True, check=False)
    assert died.returncode == -9, died.stderr  # submitted and committed, status not pushed
    assert len(jobs(w1)) == 1
    report = reconcile_once(WatchConfig(w2))
    assert report.skipped.startswith("standby: another watcher"), report.summary()
    assert str(w1) in report.skipped
    assert jobs(w2) == []  # the fine-tune w1 started is not started again
    assert reconcile_once(WatchConfig(w1)).skipped == ""  # w1 comes back: still its lease
    assert git(origin, "rev-parse", "main") == git(w1, "rev-parse", "HEAD")  # status landed
    assert len(jobs(w1)) == 1


def test_a_lease_left_unrenewed_is_taken_over_by_the_standby_clock_not_the_holders(
        origin: Path, tmp_path: Path) -> None:
    w1, w2 = two_watchers(origin, tmp_path)
    config = WatchConfig(w2, lease_s=600)
    assert not reconcile_once(WatchConfig(w1, lease_s=600), now=lambda: T0).skipped
    # w2's clock runs a day ahead of w1's: it still waits a whole lease time of its own.
    first = reconcile_once(config, now=lambda: "2026-12-03T10:00:00Z")
    assert first.skipped.startswith("standby") and "unchanged for 0 s" in first.skipped
    later = reconcile_once(config, now=lambda: "2026-12-03T10:09:00Z")
    assert later.skipped.startswith("standby") and "unchanged for 540 s" in later.skipped
    took = reconcile_once(config, now=lambda: "2026-12-03T10:10:00Z")
    assert not took.skipped and "took over the lease" in took.summary(), took.summary()
    assert str(w1) in took.summary()
    # w1 is back: now it is the standby one.
    back = reconcile_once(WatchConfig(w1, lease_s=600), now=lambda: "2026-12-02T10:30:00Z")
    assert back.skipped.startswith("standby") and str(w2) in back.skipped


def test_of_two_watchers_racing_for_a_free_lease_one_wins(origin: Path, tmp_path: Path) -> None:
    w1, w2 = two_watchers(origin, tmp_path)
    one, two = GitStore(w1), GitStore(w2)
    one.fetch(), two.fetch()  # both see no lease
    assert lease.claim(one, lease.Observed(), T0, 600).ours
    lost = lease.claim(two, lease.Observed(), T0, 600)  # its view is stale: the swap fails
    assert not lost.ours and "took the lease on origin's 'main' first" in lost.message


def test_the_lease_can_be_turned_off_for_a_single_watcher(origin: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    w1, w2 = two_watchers(origin, tmp_path)
    assert tunegit(["-C", str(w1), "reconcile", "--once", "--lease-minutes", "0"]) == 0
    assert "lease" not in git(origin, "for-each-ref", "refs/tunegit")
    capsys.readouterr()
    assert tunegit(["-C", str(w2), "reconcile", "--once", "--lease-minutes", "-1"]) == 1
    assert "--lease-minutes -1: must be 0 or more" in capsys.readouterr().err


def test_a_holder_whose_renewal_cannot_be_pushed_acts_while_half_its_lease_is_left(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w1, _ = two_watchers(origin, tmp_path)
    config = WatchConfig(w1, lease_s=600, push_attempts=1)
    assert not reconcile_once(config, now=lambda: T0).skipped  # took the lease
    git(w1, "remote", "set-url", "--push", "origin", str(tmp_path / "unreachable.git"))
    due = reconcile_once(config, now=lambda: "2026-12-02T10:04:00Z")  # renewal due, fails
    assert not due.skipped and "lease not renewed this cycle" in due.summary()
    with pytest.raises(Exception, match="cannot take the watcher lease"):
        reconcile_once(config, now=lambda: "2026-12-02T10:05:01Z")  # half the lease gone
    capsys.readouterr()
    assert tunegit(["-C", str(w1), "reconcile", "--once", "--lease-minutes", "10"]) == 1
    err = capsys.readouterr().err
    assert "cannot take the watcher lease" in err and "Traceback" not in err


def test_a_lease_deleted_on_the_origin_is_taken_at_the_next_cycle(origin: Path,
                                                                  tmp_path: Path) -> None:
    w1, w2 = two_watchers(origin, tmp_path)
    assert not reconcile_once(WatchConfig(w1), now=lambda: T0).skipped
    assert reconcile_once(WatchConfig(w2), now=lambda: T0).skipped.startswith("standby")
    git(w1, "push", "-q", "origin", ":refs/tunegit/lease/main")  # w1's machine is retired
    took = reconcile_once(WatchConfig(w2), now=lambda: "2026-12-02T10:01:00Z")
    assert not took.skipped, took.summary()
