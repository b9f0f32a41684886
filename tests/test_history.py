"""`tunegit history`: the timeline from git, pure on revisions, then on a real repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitfixtures import commit_all, git, tunegit
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan
from tunegit.core import status as status_mod
from tunegit.core.records import Transition
from tunegit.core.status import RunStatus, StatusFile, Step
from tunegit.edges.gitstore import GitStore, status_message
from tunegit.edges.history import Revision, format_timeline, timeline

pytestmark = pytest.mark.usefixtures("git_env")


def sf(**steps: Step) -> StatusFile:
    return StatusFile("exp", {run: RunStatus(step, {}) for run, step in steps.items()})


def rev(sha: str, status: StatusFile | None, *, author: str = "tunegit", own: bool = True,
        plan: bool = False, subject: str = "status") -> Revision:
    return Revision(sha * 10, author, f"2025-10-22T10:0{sha}:00+00:00", subject, own, plan,
                    status)


def test_timeline_of_a_run() -> None:
    revs = [
        rev("1", sf(a=Step()), author="Alice", own=False, plan=True, subject="Plan exp"),
        rev("2", sf(a=Step("submitted", job_id="7"))),
        rev("3", sf(a=Step("running", job_id="7"))),
        rev("4", sf(a=Step("completed", job_id="7", elapsed_s=31.0))),
    ]
    events = timeline(revs, revs, "a")
    assert [(e.author, e.what) for e in events] == [
        ("Alice", "planned (Plan exp)"),
        ("tunegit", "finetune: pending -> submitted, job 7"),
        ("tunegit", "finetune: submitted -> running, job 7"),
        ("tunegit", "finetune: running -> completed, job 7, 31 s"),
    ]
    text = format_timeline("exp/a", events)
    assert text.splitlines()[1] == ("2025-10-22 10:01:00  1111111111  Alice               "
                                    "a: planned (Plan exp)")


def test_plan_changes_and_other_runs() -> None:
    revs = [
        rev("1", sf(a=Step()), author="Alice", own=False, plan=True, subject="Plan"),
        rev("2", sf(a=Step(), b=Step()), author="Bob", own=False, plan=True, subject="Add b"),
        rev("3", sf(a=Step(), b=Step("failed", reason="NonZeroExitCode"))),
    ]
    whole = [(e.run, e.what) for e in timeline(revs, revs, None)]
    assert whole == [("a", "planned (Plan)"), ("b", "planned (Add b)"),
                     ("b", "finetune: pending -> failed, NonZeroExitCode")]
    only_a = [(e.run, e.what) for e in timeline(revs, revs, "a")]
    assert only_a == [("a", "planned (Plan)"), ("", "plan changed (Add b)")]


def test_history_from_a_real_repository(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    make_repo(repo, files=LOCAL_FILES, gitignore=GITIGNORE)
    commit_all(repo, "Seed")
    git(repo, "checkout", "-q", "-b", "plan-exp1")
    path = repo / "experiments/exp1/experiment.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(tiny_plan("exp1"))
    assert tunegit(["-C", str(repo), "check", "--write", "-q"]) == 0
    commit_all(repo, "Plan exp1", author="Alice Planner")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge plan-exp1", "plan-exp1")

    store = GitStore(repo)
    status_path = repo / "experiments/exp1/runs_status.yaml"
    run = "tiny-llama_rank8"
    for old, new in (("pending", "submitted"), ("submitted", "completed")):
        status = status_mod.parse(status_path.read_text())
        status_path.write_text(status_mod.dump(status.with_step(run, None, Step(new,
                                                                                job_id="local-1"))))
        store.commit([status_path], status_message(
            [Transition("exp1", run, None, old, new, "local-1")], store.head()))

    capsys.readouterr()
    assert tunegit(["-C", str(repo), "history", f"exp1/{run}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"exp1/{run}"
    assert "Alice Planner" in lines[1] and lines[1].endswith(f"{run}: planned (Plan exp1)")
    assert lines[2].endswith("finetune: pending -> submitted, job local-1")
    assert lines[3].endswith("finetune: submitted -> completed, job local-1")
    assert len(lines) == 4

    assert tunegit(["-C", str(repo), "history", "exp1/nope"]) == 1
    assert "known runs: tiny-llama_rank8" in capsys.readouterr().err
    assert tunegit(["-C", str(repo), "status", "exp1"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "exp1: 1 completed, 1 pending"
    assert [line.split() for line in table.splitlines()[2:]] == [
        [run, "finetune", "completed", "local-1"], [run, "capitalization_epoch_0", "pending"]]


def test_history_of_an_unknown_experiment(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    make_repo(repo, files=LOCAL_FILES, gitignore=GITIGNORE)
    commit_all(repo, "Seed")
    assert tunegit(["-C", str(repo), "history", "ghost"]) == 1
    assert "no commits touch experiments/ghost" in capsys.readouterr().err
