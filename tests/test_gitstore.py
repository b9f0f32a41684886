"""GitStore on real git: fast-forward only the protected branch, commit only given paths,
push with fetch-rebase-retry, recognise own commits; plus its pure message formatting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitfixtures import clone, commit_all, git
from tunegit.core.records import Transition
from tunegit.edges.gitstore import (
    GitStore,
    GitStoreError,
    is_own_message,
    state_counts,
    status_message,
    trailers,
)

pytestmark = pytest.mark.usefixtures("git_env")


def T(exp: str, run: str, new: str, key: str | None = None, job: str | None = None,
      old: str = "running", reason: str | None = None) -> Transition:
    return Transition(exp, run, key, old, new, job, reason)


# --- pure ---------------------------------------------------------------------------------------

def test_message_for_one_experiment_counts_states_and_lists_transitions() -> None:
    msg = status_message([T("cap_8L", "r1", "completed", job="11"),
                          T("cap_8L", "r2", "completed", job="12"),
                          T("cap_8L", "r3", "failed", job="13", reason="NonZeroExitCode"),
                          T("cap_8L", "r1", "completed", key="cap_epoch_1", job="14")],
                         "abc123")
    subject, body, _trailers = msg.rstrip("\n").split("\n\n")
    assert subject == "status(cap_8L): 3 completed, 1 failed"
    assert body.splitlines() == [
        "cap_8L/r1 finetune: running -> completed (job 11)",
        "cap_8L/r2 finetune: running -> completed (job 12)",
        "cap_8L/r3 finetune: running -> failed (job 13) [NonZeroExitCode]",
        "cap_8L/r1 cap_epoch_1: running -> completed (job 14)",
    ]
    assert trailers(msg) == {"Tunegit-Experiment": ["cap_8L"],
                             "Tunegit-Runs": ["cap_8L/r1, cap_8L/r2, cap_8L/r3"],
                             "Tunegit-Jobs": ["11, 12, 13, 14"],
                             "Tunegit-Plan-Commit": ["abc123"]}
    assert is_own_message(msg)


def test_message_for_several_experiments() -> None:
    msg = status_message([T("a", "r", "submitted", old="pending"), T("b", "r", "running",
                                                                    old="submitted")], None)
    assert msg.splitlines()[0] == "status: 2 experiments, 1 submitted, 1 running"
    assert trailers(msg)["Tunegit-Experiment"] == ["a", "b"]
    assert "Tunegit-Plan-Commit" not in trailers(msg)


def test_state_counts_follow_the_lifecycle_order() -> None:
    assert state_counts([T("a", "r", "failed"), T("a", "s", "pending", old="x"),
                         T("a", "t", "failed")]) == "1 pending, 2 failed"


def test_human_messages_are_not_own() -> None:
    assert not is_own_message("Add cap_8L\n\nTunegit-Experiment is mentioned in prose.\n")
    assert not is_own_message("status(x): 1 completed\n")


# --- real git -----------------------------------------------------------------------------------

def _status_commit(store: GitStore, repo: Path, exp: str, text: str) -> str | None:
    path = repo / "experiments" / exp / "runs_status.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return store.commit([path], status_message([T(exp, "r", "running")], None))


def test_sync_fast_forwards_and_refuses_dirty_detached_other_branch(origin: Path,
                                                                   tmp_path: Path) -> None:
    watcher, human = clone(origin, tmp_path / "w"), clone(origin, tmp_path / "h")
    (human / "notes.txt").write_text("hello\n")
    new = commit_all(human, "Add notes")
    git(human, "push", "-q", "origin", "main")
    store = GitStore(watcher)
    result = store.sync()
    assert result.after == new == result.remote

    (watcher / "notes.txt").write_text("edited\n")
    with pytest.raises(GitStoreError, match=r"uncommitted changes in notes.txt") as exc:
        store.sync()
    assert "git` stash" in exc.value.format() or "git stash" in exc.value.format()
    git(watcher, "checkout", "-q", "--", "notes.txt")

    git(watcher, "checkout", "-q", "--detach")
    with pytest.raises(GitStoreError, match="detached"):
        store.sync()
    git(watcher, "checkout", "-q", "-b", "feature")
    with pytest.raises(GitStoreError, match=r"on branch 'feature'.*follows 'main' only"):
        store.sync()


def test_diverged_by_a_human_commit_is_refused_never_rewritten(origin: Path,
                                                               tmp_path: Path) -> None:
    watcher, human = clone(origin, tmp_path / "w"), clone(origin, tmp_path / "h")
    (watcher / "local.txt").write_text("x\n")
    mine = commit_all(watcher, "A human commit made in the watcher's checkout")
    (human / "other.txt").write_text("y\n")
    commit_all(human, "Other")
    git(human, "push", "-q", "origin", "main")
    with pytest.raises(GitStoreError, match="diverged") as exc:
        GitStore(watcher).sync()
    assert "never rewrites history" in exc.value.format()
    assert git(watcher, "rev-parse", "HEAD").strip() == mine


def test_commit_takes_only_the_given_paths(origin: Path, tmp_path: Path) -> None:
    repo = clone(origin, tmp_path / "w")
    store = GitStore(repo)
    (repo / "sites" / "local.yaml").write_text("# changed by someone\n")
    git(repo, "add", "sites/local.yaml")
    sha = _status_commit(store, repo, "e1", "run_group: e1\nruns: {}\n")
    assert sha is not None
    assert git(repo, "show", "--name-only", "--format=", sha).split() == [
        "experiments/e1/runs_status.yaml"]
    assert "sites/local.yaml" in git(repo, "status", "--porcelain")
    assert store.is_own(sha)
    assert _status_commit(store, repo, "e1", "run_group: e1\nruns: {}\n") is None  # unchanged


def test_push_failure_keeps_the_commit_local_and_next_push_delivers(origin: Path,
                                                                    tmp_path: Path) -> None:
    repo = clone(origin, tmp_path / "w")
    sleeps: list[float] = []
    store = GitStore(repo, attempts=3, backoff_s=0.5, sleep=sleeps.append)
    sha = _status_commit(store, repo, "e1", "run_group: e1\nruns: {}\n")
    hidden = origin.with_name("origin-away.git")
    origin.rename(hidden)
    result = store.push()
    assert not result.pushed and result.attempts == 1  # the fetch after the first try fails
    assert store.unpushed() == [sha]
    hidden.rename(origin)
    assert store.push().pushed
    assert git(origin, "rev-parse", "main").strip() == sha


def test_changed_experiments_ignore_own_commits(origin: Path, tmp_path: Path) -> None:
    repo = clone(origin, tmp_path / "w")
    store = GitStore(repo)
    start = store.head()
    _status_commit(store, repo, "watched", "run_group: watched\nruns: {}\n")
    assert store.changed_experiments(start, store.head()) == set()
    (repo / "experiments" / "human").mkdir(parents=True)
    (repo / "experiments" / "human" / "experiment.yaml").write_text("name: human\n")
    commit_all(repo, "Plan human")
    assert store.changed_experiments(start, store.head()) == {"human"}
    (repo / "sites" / "local.yaml").write_text("# site changed\n")
    commit_all(repo, "Site")
    assert store.changed_experiments(start, store.head()) is None  # a site change: everything
    assert store.changed_experiments(None, store.head()) is None


def test_changed_experiments_see_merges_renames_and_messages_like_records(
        origin: Path, tmp_path: Path) -> None:
    """What one `git log` over the range reports: a merge's files (against each parent), both
    names of a renamed experiment, a message that looks like a record separator."""
    repo = clone(origin, tmp_path / "w")
    store = GitStore(repo)
    start = store.head()
    plan = repo / "experiments" / "old" / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text("name: old\n")
    commit_all(repo, "Plan old\x1f\n\nbody with a --- line\n")
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "experiments" / "side").mkdir()
    (repo / "experiments" / "side" / "experiment.yaml").write_text("name: side\n")
    commit_all(repo, "Plan side")
    git(repo, "checkout", "-q", "main")
    git(repo, "mv", "experiments/old", "experiments/new")
    commit_all(repo, "Rename old")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge side", "side")
    _status_commit(store, repo, "watched", "run_group: watched\nruns: {}\n")
    assert store.changed_experiments(start, store.head()) == {"old", "new", "side"}
    renamed = git(repo, "rev-parse", "HEAD~2").strip()
    assert store.changed_experiments(git(repo, "rev-parse", "HEAD~3").strip(),
                                     renamed) == {"old", "new"}


def test_concurrent_human_merges_lose_no_commit(origin: Path, tmp_path: Path) -> None:
    """Many rounds of: watcher commits status; a human pushes before the watcher's push
    (sometimes again during the back-off). Every status and every human commit survives."""
    watcher, human = clone(origin, tmp_path / "w"), clone(origin, tmp_path / "h")
    rounds = 12
    state = {"n": 0}

    def human_push() -> None:
        state["n"] += 1
        git(human, "pull", "-q", "--ff-only", "origin", "main")
        (human / "humans" / f"h{state['n']}.txt").parent.mkdir(exist_ok=True)
        (human / "humans" / f"h{state['n']}.txt").write_text(f"{state['n']}\n")
        commit_all(human, f"Human merge {state['n']}")
        git(human, "push", "-q", "origin", "main")

    def sleep(_: float) -> None:  # a second human merge lands during some back-offs
        if state["n"] % 3 == 0:
            human_push()

    store = GitStore(watcher, attempts=6, backoff_s=0.0, sleep=sleep)
    status_shas = 0
    for i in range(rounds):
        store.sync()
        assert _status_commit(store, watcher, "e1", f"run_group: e1\nround: {i}\nruns: {{}}\n")
        status_shas += 1
        human_push()
        result = store.push()
        assert result.pushed, result
        assert result.attempts >= 2

    log = git(origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.startswith("status(e1)") for s in log) == status_shas
    assert sum(s.startswith("Human merge") for s in log) == state["n"] >= rounds
    assert git(origin, "show", "main:experiments/e1/runs_status.yaml").count(
        f"round: {rounds - 1}") == 1
    assert store.unpushed() == []


def test_threaded_human_pushes_race_the_watcher(origin: Path, tmp_path: Path) -> None:
    """A human thread pushes continuously while the watcher commits and pushes."""
    watcher, human = clone(origin, tmp_path / "w"), clone(origin, tmp_path / "h")
    done = threading.Event()
    pushed_humans: list[int] = []

    def humans() -> None:
        n = 0
        while not done.is_set() and n < 30:
            n += 1
            git(human, "pull", "-q", "--ff-only", "origin", "main")
            (human / f"t{n}.txt").write_text(f"{n}\n")
            commit_all(human, f"Threaded human {n}")
            pushed = git_ok(human, "push", "-q", "origin", "main")
            if pushed:
                pushed_humans.append(n)
            else:
                git(human, "reset", "-q", "--hard", "HEAD~1")

    thread = threading.Thread(target=humans)
    thread.start()
    store = GitStore(watcher, attempts=20, backoff_s=0.01)
    try:
        for i in range(10):
            store.sync()
            _status_commit(store, watcher, "e2", f"run_group: e2\nround: {i}\nruns: {{}}\n")
            assert store.push().pushed
    finally:
        done.set()
        thread.join()
    log = git(origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.startswith("status(e2)") for s in log) == 10
    assert sorted(int(s.split()[-1]) for s in log if s.startswith("Threaded")) == pushed_humans


def git_ok(cwd: Path, *args: str) -> bool:
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False
                          ).returncode == 0
