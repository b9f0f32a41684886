"""A site's limits hold across all the experiments of a cycle: the local executor running
real torchtune and inspect-ai jobs of three experiments on a max_parallel 2 site never has
more than 2 of them running, seen both while they run (each cycle's live steps, and the
processes whose state files say they run) and afterwards (their recorded start and end)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from planfixtures import tiny_plan
from test_local_executor import job_repo
from tunegit.cli import main
from tunegit.core.states import LIVE_STATES, TERMINAL_STATES
from tunegit.core.status import StatusFile
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.executors.local import JOB_END_FILE, JOBS_DIR
from tunegit.files import read_status, utc_now
from tunegit.loop.engine import cycle

pytestmark = [
    pytest.mark.slow, pytest.mark.train,
    pytest.mark.skipif(importlib.util.find_spec("torchtune") is None
                       or importlib.util.find_spec("inspect_ai") is None,
                       reason="needs the train extra (pip install -e '.[train]')"),
]
NAMES = ("limits_a", "limits_b", "limits_c")


def statuses(ws: Workspace) -> list[StatusFile]:
    out = []
    for name in NAMES:
        status = read_status(ws.experiment_dir(name) / STATUS_FILE)
        assert status is not None
        out.append(status)
    return out


def running_processes(jobs: Path) -> int:
    """Jobs whose wrapper recorded its pid and no exit code yet: processes running now."""
    if not jobs.is_dir():
        return 0
    return sum(1 for d in jobs.iterdir()
               if (d / "pid").exists() and not (d / JOB_END_FILE).exists())


def most_at_once(intervals: list[tuple[str, str]]) -> int:
    """The most intervals [start, end) holding one moment (UTC stamps sort as text)."""
    return max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)


def test_three_experiments_on_a_max_parallel_2_site_never_run_more_than_2_jobs(
        tmp_path: Path) -> None:
    plans = {n: tiny_plan(n, question=f"Does {n} wait its turn?") for n in NAMES}
    repo = job_repo(tmp_path / "repo", plans=plans)
    assert "max_parallel: 2\n" in (repo / "sites/local.yaml").read_text()
    assert main(["-C", str(repo), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics only
    ws, make = Workspace(repo), executor_factory(Workspace(repo))
    jobs = repo / ".tunegit/outputs" / JOBS_DIR
    live_seen, running_seen = [], []
    deadline = time.monotonic() + 900
    while True:
        result = cycle(ws, list(NAMES), now=utc_now(), plan_commit=None, executor_for=make)
        assert not result.errors, result.errors
        live_seen.append(result.live)
        for _ in range(4):  # between cycles, what really runs
            running_seen.append(running_processes(jobs))
            time.sleep(0.25)
        if result.live == 0 and result.pending == 0:
            break
        assert time.monotonic() < deadline, [s.counts() for s in statuses(ws)]
    steps = [step for status in statuses(ws) for _, _, step in status.steps()]
    assert len(steps) == 6 and all(s.status == "completed" for s in steps), \
        [s.counts() for s in statuses(ws)]
    assert max(live_seen) == 2, live_seen  # the site's whole capacity was used, never more
    assert max(running_seen) <= 2, running_seen
    intervals = [(s.started, s.ended) for s in steps]
    assert all(s and e for s, e in intervals), intervals
    assert most_at_once(intervals) <= 2, sorted(intervals)
    assert not any(s.status in LIVE_STATES for s in steps)
    assert all(s.status in TERMINAL_STATES for s in steps)
