"""Invariants that keep tunegit light at lab scale (figures: bench/PERFORMANCE.md).

- the pre-commit hook passes the staged files, and `check` maps each to its experiment:
  a commit that touches one experiment checks that experiment only;
- a watcher cycle with nothing to do reads no other experiment's runs_status.yaml;
- an engine cycle asks each executor once, whatever the number of experiments with jobs;
- repository priors are read from each status file once while it is unchanged.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes import PendingExecutor
from gitfixtures import clone, commit_all, git
from planfixtures import REPO, make_repo, minimal_plan, run_cli, tiny_plan, write_plan
from tunegit.core import status as status_mod
from tunegit.core.states import SUBMITTED
from tunegit.edges import priors
from tunegit.edges.analysis import analyse as real_analyse
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.loop import engine
from tunegit.loop.cycle import STATE_FILE, WatchConfig, WatchState, reconcile_once

# --- the hook: only the changed experiments ----------------------------------------------------

def hook(hook_id: str) -> dict[str, Any]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    found: dict[str, Any] = next(h for h in hooks if h["id"] == hook_id)
    return found


def test_check_hook_passes_the_staged_files_of_experiments() -> None:
    h = hook("tunegit-check")
    assert h["entry"].split()[:2] == ["tunegit", "check"]
    assert h["pass_filenames"] is True
    pattern = re.compile(h["files"])
    for name in (PLAN_FILE, "runs_plan.md", STATUS_FILE, "design-experiment.log"):
        assert pattern.search(f"experiments/exp_a/{name}"), name
    for other in ("sites/della.yaml", "README.md", "experiments/exp_a/results.md",
                  "tasks/capitalization/eval.py"):
        assert not pattern.search(other), other


@pytest.fixture
def three(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    for name in ("exp_a", "exp_b", "exp_c"):
        write_plan(root, name, minimal_plan(name))
    return root


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def recording(ws: Workspace, plan_path: Path, site_override: str | None = None) -> Any:
        seen.append(plan_path.parent.name)
        return real_analyse(ws, plan_path, site_override)

    monkeypatch.setattr("tunegit.commands.check.analyse", recording)
    return seen


@pytest.mark.parametrize("files", [
    ("experiments/exp_b/experiment.yaml",),
    ("experiments/exp_b/runs_plan.md",),
    ("experiments/exp_b/experiment.yaml", "experiments/exp_b/runs_status.yaml",
     "experiments/exp_b/runs_plan.md", "experiments/exp_b/design-experiment.log"),
], ids=["plan", "rendering", "all-files-of-one-experiment"])
def test_check_of_staged_files_checks_only_their_experiment(
        three: Path, analysed: list[str], capsys: pytest.CaptureFixture[str],
        files: Sequence[str]) -> None:
    run_cli(capsys, three, "check", "--write", "-q", "experiments/exp_b")
    analysed.clear()
    code, _, err = run_cli(capsys, three, "check", "-q", *files)
    assert code == 0, err
    assert analysed == ["exp_b"]


def test_check_of_two_experiments_files_checks_those_two(
        three: Path, analysed: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, three, "check", "--write", "-q")
    analysed.clear()
    code, _, err = run_cli(capsys, three, "check", "-q", "experiments/exp_c/runs_status.yaml",
                           "experiments/exp_a/experiment.yaml")
    assert code == 0, err
    assert sorted(analysed) == ["exp_a", "exp_c"]


# --- priors: each status file read once while unchanged --------------------------------------

@pytest.fixture
def opened() -> Iterator[Counter[str]]:
    """Files opened (audit hook) while the test runs; the hook stays, switched off after."""
    counts: Counter[str] = Counter()
    state = {"on": True}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if state["on"] and event == "open" and isinstance(args[0], str | Path):
            counts[Path(args[0]).name + ":" + Path(args[0]).parent.name] += 1

    sys.addaudithook(hook)
    yield counts
    state["on"] = False


def status_opens(counts: Counter[str], names: Collection[str]) -> int:
    return sum(counts[f"{STATUS_FILE}:{n}"] for n in names)


# --- the watcher: a cycle with nothing to do ---------------------------------------------------

def live_repo(root: Path, names: Sequence[str]) -> Workspace:
    """Experiments on the local site whose every step is submitted (job ids 1, 2, ...)."""
    ws = Workspace(root)
    job = 0
    for name in names:
        write_plan(root, name, tiny_plan(name))
        status = status_mod.initial(
            real_analyse(ws, ws.experiment_dir(name) / PLAN_FILE).expansion, name)
        for run, key, step in status.steps():
            job += 1
            status = status.with_step(run, key, step.moved(
                SUBMITTED, "2026-11-24T00:00:00Z", job_id=str(job),
                job_name=f"tg.{name}.{run}.{key or 'ft'}", attempt=1))
        (ws.experiment_dir(name) / STATUS_FILE).write_text(status_mod.dump(status))
    return ws


@pytest.mark.usefixtures("git_env")
def test_idle_watcher_cycle_reads_no_status_file(origin: Path, tmp_path: Path,
                                                 opened: Counter[str]) -> None:
    seed = clone(origin, tmp_path / "seed")
    names = [f"idle_{i}" for i in range(3)]
    ws = Workspace(seed)
    for name in names:
        write_plan(seed, name, tiny_plan(name))
        status = status_mod.initial(
            real_analyse(ws, ws.experiment_dir(name) / PLAN_FILE).expansion, name)
        (ws.experiment_dir(name) / STATUS_FILE).write_text(status_mod.dump(status))
    commit_all(seed, "three plans, all pending")
    git(seed, "push", "-q", "origin", "HEAD:main")
    watcher = clone(origin, tmp_path / "watcher")
    tip = git(watcher, "rev-parse", "HEAD").strip()
    WatchState(tip, ()).save(watcher / ".git" / STATE_FILE)  # all reconciled, none active
    executor = PendingExecutor()
    opened.clear()
    report = reconcile_once(WatchConfig(watcher), executor_for=lambda site: executor)
    assert report.experiments == ()
    assert executor.polls == []
    assert status_opens(opened, names) == 0
    # What the last cycle left with work (its saved state) is looked at, and nothing else.
    WatchState(tip, ("idle_1",)).save(watcher / ".git" / STATE_FILE)
    opened.clear()
    report = reconcile_once(WatchConfig(watcher), executor_for=lambda site: executor)
    assert report.experiments == ("idle_1",)
    assert status_opens(opened, ["idle_1"]) >= 1  # (others only as priors, through the index)


# --- the engine: one poll per executor per cycle -----------------------------------------------

def test_engine_cycle_polls_each_executor_once(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    names = [f"live_{i}" for i in range(3)]
    ws = live_repo(root, names)
    executor = PendingExecutor()
    result = engine.cycle(ws, names, now="2026-11-24T00:00:01Z", plan_commit=None,
                          executor_for=lambda site: executor)
    assert not result.errors
    assert result.live == 3 * 2
    assert len(executor.polls) == 1
    assert executor.polls[0][0] == {str(i) for i in range(1, 7)}


# --- priors: the index -------------------------------------------------------------------------

def completed_repo(root: Path, names: Sequence[str]) -> Workspace:
    """Experiments whose fine-tuning steps completed with metrics (what priors are made of)."""
    ws = Workspace(root)
    for name in names:
        write_plan(root, name, minimal_plan(name))
        status = status_mod.initial(
            real_analyse(ws, ws.experiment_dir(name) / PLAN_FILE).expansion, name)
        for run, key, step in status.steps():
            if key is None and step.status == "pending":
                status = status.with_step(run, key, step.moved(
                    "completed", "2026-11-01T00:00:00Z", metrics={"it_per_s": 2.0},
                    config={"model": "Llama-3.2-1B-Instruct", "gpu_type": "A100-80GB",
                            "batch_size": 4}))
        (ws.experiment_dir(name) / STATUS_FILE).write_text(status_mod.dump(status))
    return ws


def age(path: Path, seconds: float = 60.0) -> None:
    """Move a file's mtime into the past, out of the index's racy window."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_priors_index_reads_each_unchanged_status_file_once(
        tmp_path: Path, opened: Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "repo")
    (root / ".git").mkdir()  # the index lives in the git directory
    names = [f"done_{i}" for i in range(3)]
    ws = completed_repo(root, names)
    for name in names:
        age(ws.experiment_dir(name) / STATUS_FILE)
    (root / ".git" / priors.INDEX_FILE).unlink()
    monkeypatch.setattr(priors, "_MEMO", {})  # a fresh process, a fresh clone
    opened.clear()
    first = priors.load_repo_priors(ws, exclude="done_0")
    assert {p.source.split("/")[0] for p in first} == {"done_1", "done_2"}
    assert status_opens(opened, names) == 3
    assert (root / ".git" / priors.INDEX_FILE).is_file()
    opened.clear()
    assert priors.load_repo_priors(ws, exclude="done_0") == first  # in-process memo
    monkeypatch.setattr(priors, "_MEMO", {})  # a new process: the index in .git
    assert priors.load_repo_priors(ws, exclude="done_0") == first
    assert status_opens(opened, names) == 0
    path = ws.experiment_dir("done_2") / STATUS_FILE  # a changed file is read again
    path.write_text(path.read_text().replace("it_per_s: 2.0", "it_per_s: 3.0"))
    age(path, 30)
    opened.clear()
    again = priors.load_repo_priors(ws, exclude="done_0")
    assert status_opens(opened, names) == 1
    assert {p.it_per_s for p in again if p.source.startswith("done_2")} == {3.0}


def test_a_copied_index_spares_a_fresh_clone_the_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI restores .git/tunegit-priors.json into a fresh clone: every stat key differs (new
    inodes, new mtimes), the bytes do not, so the files are hashed, not parsed."""
    import shutil

    root = make_repo(tmp_path / "repo")
    (root / ".git").mkdir()
    names = [f"done_{i}" for i in range(3)]
    completed_repo(root, names)
    monkeypatch.setattr(priors, "_MEMO", {})
    first = priors.load_repo_priors(Workspace(root))
    clone_root = tmp_path / "clone"
    shutil.copytree(root, clone_root)
    for name in names:
        (clone_root / "experiments" / name / STATUS_FILE).touch()
    parsed: list[str] = []
    real_parse = priors._parse_priors
    monkeypatch.setattr(priors, "_parse_priors",
                        lambda name, data: parsed.append(name) or real_parse(name, data))
    monkeypatch.setattr(priors, "_MEMO", {})
    ws = Workspace(clone_root)
    assert priors.load_repo_priors(ws) == first
    assert parsed == []
    path = ws.experiment_dir("done_1") / STATUS_FILE  # changed bytes are parsed again
    path.write_text(path.read_text().replace("it_per_s: 2.0", "it_per_s: 3.0"))
    monkeypatch.setattr(priors, "_MEMO", {})
    again = priors.load_repo_priors(ws)
    assert parsed == ["done_1"]
    assert {p.it_per_s for p in again if p.source.startswith("done_1")} == {3.0}
