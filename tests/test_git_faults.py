"""Git faults on real git (bare origin + clones): pushes rejected again and again by real
concurrent pushes, a stale or fresh index.lock, a force-pushed main, a detached or dirty
checkout, an origin that cannot be reached for fetch or for push. The watcher either
recovers or stops with a clear message (exit 1, never a traceback); it never rewrites
history, never commits a file other than runs_status.yaml, and never loses a status change.

The cycle is the real engine with the real local executor (the plan's model is absent, so
its jobs fail in a second); nothing is faked. The concurrent pushes come from a real
`pre-push` hook in the watcher's clone that pushes a human commit from another clone: the
remote moves between the watcher's fetch and its push, as when a merge lands at that moment.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

import pytest

from gitfixtures import clone, commit_all, git, tunegit
from planfixtures import tiny_plan, weightless_model
from tunegit.core.status import dump, parse
from tunegit.edges.gitstore import STALE_LOCK_S, GitStore, GitStoreError
from tunegit.edges.workspace import STATUS_FILE
from tunegit.loop.cycle import WatchConfig, reconcile_once

pytestmark = pytest.mark.usefixtures("git_env")


def setup(origin: Path, tmp_path: Path, name: str = "exp1") -> tuple[Path, Path, str]:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    weightless_model(watcher)  # the preflight finds the model; its job fails in seconds
    path = laptop / "experiments" / name / "experiment.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(tiny_plan(name))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", f"experiments/{name}"]) == 0
    sha = commit_all(laptop, f"Plan {name}")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    return laptop, watcher, sha


def history(origin: Path) -> list[str]:
    return git(origin, "rev-list", "main").split()


def own_commits_touch_status_only(repo: Path, since: str) -> None:
    store = GitStore(repo)
    for sha in git(repo, "rev-list", f"{since}..HEAD").split():
        if store.is_own(sha):
            assert all(Path(f).name == STATUS_FILE for f in store.files_of(sha)), sha


def racing_hook(watcher: Path, human: Path, times: int) -> Path:
    """pre-push in the watcher's clone: the first `times` pushes race a human push."""
    counter = watcher / ".git" / "race-count"
    hook = watcher / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/bash\n"
        "unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0)\n"
        f'[ "$n" -ge {times} ] && exit 0\n'
        f"echo $((n + 1)) > {counter}\n"
        f"git -C {human} pull -q --rebase origin main >/dev/null\n"
        f'echo "note $n" >> {human}/NOTES.md\n'
        f"git -C {human} add NOTES.md && git -C {human} commit -qm \"Human change $n\"\n"
        f"git -C {human} push -q origin HEAD:main\n")
    hook.chmod(0o755)
    return counter


@pytest.mark.slow
def test_push_rejected_four_times_then_lands_on_top(origin: Path, tmp_path: Path) -> None:
    laptop, watcher, plan_sha = setup(origin, tmp_path)
    racing_hook(watcher, laptop, times=4)
    report = reconcile_once(WatchConfig(watcher, push_attempts=5, backoff_s=0))
    assert report.push is not None and report.push.pushed and report.push.attempts == 5
    humans = git(laptop, "log", "--format=%H", "--grep=^Human change", "main").split()
    assert len(humans) == 4
    main = history(origin)
    assert all(h in main for h in humans) and plan_sha in main  # nothing rewritten or lost
    assert GitStore(watcher).is_own(main[0])  # the status commit replayed on top
    assert "status: submitted" not in git(origin, "log", "-1", "--format=%s", "main")
    assert "submitted" in git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")
    assert git(watcher, "status", "--porcelain") == ""
    own_commits_touch_status_only(watcher, plan_sha)


@pytest.mark.slow
def test_push_rejected_every_time_keeps_the_commit_and_the_next_cycle_pushes(
        origin: Path, tmp_path: Path) -> None:
    laptop, watcher, plan_sha = setup(origin, tmp_path)
    counter = racing_hook(watcher, laptop, times=100)
    report = reconcile_once(WatchConfig(watcher, push_attempts=3, backoff_s=0))
    assert report.push is not None and not report.push.pushed
    assert "push failed after 3 attempt(s), kept local" in report.summary()
    local = git(watcher, "rev-parse", "HEAD").strip()
    assert GitStore(watcher).is_own(local) and local not in history(origin)
    counter.write_text("1000\n")  # the race stops
    again = reconcile_once(WatchConfig(watcher, push_attempts=3, backoff_s=0))
    assert again.push is None or again.push.pushed
    shown = git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")
    assert "status: submitted" in shown or "status: running" in shown or "status: failed" in shown
    assert len(git(origin, "log", "--format=%H", "--grep=^Human change", "main").split()) == 3
    own_commits_touch_status_only(watcher, plan_sha)


def test_a_stale_index_lock_is_removed_and_a_fresh_one_waits(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, watcher, _ = setup(origin, tmp_path)
    lock = watcher / ".git" / "index.lock"
    lock.write_text("")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert "another git process is working in the watcher's checkout" in err
    assert "Traceback" not in err and lock.exists()
    old = time.time() - STALE_LOCK_S - 5
    os.utime(lock, (old, old))  # a killed git left it long ago
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert not lock.exists()
    assert git(watcher, "rev-parse", "HEAD") == git(origin, "rev-parse", "main")


def test_an_index_lock_a_real_git_holds_is_never_removed_whatever_the_clock_says(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`git update-index --index-info` takes index.lock and holds it open while it reads its
    stdin: a real git mid-operation. Its lock looks old (mtime set back, as a clock running
    ahead makes it look); the watcher must still leave it alone."""
    _, watcher, _ = setup(origin, tmp_path)
    lock = watcher / ".git" / "index.lock"
    holder = subprocess.Popen(["git", "update-index", "--index-info"], cwd=watcher,
                              stdin=subprocess.PIPE)
    try:
        for _ in range(100):
            if lock.exists():
                break
            time.sleep(0.05)
        old = time.time() - STALE_LOCK_S - 600
        os.utime(lock, (old, old))
        store = GitStore(watcher)
        with pytest.raises(GitStoreError, match=f"held by process {holder.pid}"):
            store.clear_stale_lock(now=time.time() + 600)
        capsys.readouterr()
        assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
        err = capsys.readouterr().err
        assert f"held by process {holder.pid}" in err and "Traceback" not in err
        assert lock.exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not lock.exists()  # git finished and released it itself
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0


def test_a_force_pushed_main_stops_the_watcher_without_rewriting(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    laptop, watcher, plan_sha = setup(origin, tmp_path)
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0  # status pushed
    before_watcher = git(watcher, "rev-parse", "HEAD").strip()
    git(laptop, "fetch", "-q", "origin")
    git(laptop, "reset", "-q", "--hard", f"{plan_sha}~1")  # drops the plan and its status
    (laptop / "OTHER.md").write_text("rewritten\n")
    commit_all(laptop, "Rewritten history")
    git(laptop, "push", "-q", "--force", "origin", "HEAD:main")
    forced = git(origin, "rev-parse", "main").strip()
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert "has diverged" in err and "never rewrites history" in err and "Traceback" not in err
    assert git(origin, "rev-parse", "main").strip() == forced  # the watcher pushed nothing
    assert git(watcher, "rev-parse", "HEAD").strip() == before_watcher  # kept, not reset


@pytest.mark.parametrize("fault", ["detached", "other-branch", "dirty-tracked", "staged"])
def test_a_checkout_the_watcher_may_not_act_on_is_refused(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str) -> None:
    _, watcher, _ = setup(origin, tmp_path)
    git(watcher, "pull", "-q", "--ff-only")
    if fault == "detached":
        git(watcher, "checkout", "-q", "--detach")
        expected = "HEAD is detached"
    elif fault == "other-branch":
        git(watcher, "checkout", "-q", "-b", "feature")
        expected = "on branch 'feature'"
    elif fault == "dirty-tracked":
        (watcher / "sites/local.yaml").write_text("executor: local\n# edited on the cluster\n")
        expected = "uncommitted changes in sites/local.yaml"
    else:
        (watcher / "EXTRA.md").write_text("staged by someone\n")
        git(watcher, "add", "EXTRA.md")
        expected = "uncommitted changes in EXTRA.md"
    before = git(origin, "rev-parse", "main")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert expected in err and "hint:" in err and "Traceback" not in err
    assert git(origin, "rev-parse", "main") == before


def test_untracked_files_in_the_checkout_are_never_committed(origin: Path,
                                                             tmp_path: Path) -> None:
    _, watcher, plan_sha = setup(origin, tmp_path)
    (watcher / "scratch.txt").write_text("not for git\n")
    (watcher / "tasks" / "notes.md").write_text("untracked\n")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    files = git(origin, "diff", "--name-only", plan_sha, "main").split()
    assert files == [f"experiments/exp1/{STATUS_FILE}"]
    own_commits_touch_status_only(watcher, plan_sha)


def test_fetch_failure_stops_with_a_message_and_the_next_cycle_recovers(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, watcher, _ = setup(origin, tmp_path)
    git(watcher, "remote", "set-url", "origin", str(tmp_path / "unreachable.git"))
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert "cannot fetch 'main' from 'origin'" in err and "Traceback" not in err
    assert "the next cycle retries" in err
    git(watcher, "remote", "set-url", "origin", str(origin))
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert "submitted" in git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")


def test_push_failure_keeps_the_status_commit_local_until_the_network_is_back(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, watcher, plan_sha = setup(origin, tmp_path)
    git(watcher, "remote", "set-url", "--push", "origin", str(tmp_path / "unreachable.git"))
    capsys.readouterr()
    # Without the watcher lease (it too needs a push; test_lease covers a holder whose
    # renewal fails): the cycle acts, and its commit waits for the network.
    assert tunegit(["-C", str(watcher), "reconcile", "--once", "--push-attempts", "2",
                    "--lease-minutes", "0"]) == 1
    out = capsys.readouterr().out
    assert "push failed after 2 attempt(s), kept local" in out
    local = git(watcher, "rev-parse", "HEAD").strip()
    assert local != plan_sha and git(origin, "rev-parse", "main").strip() == plan_sha
    git(watcher, "remote", "set-url", "--push", "origin", str(origin))
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert git(origin, "merge-base", "--is-ancestor", local, "main") == ""  # landed as is


def test_git_errors_inside_a_cycle_are_a_clear_stop(origin: Path, tmp_path: Path) -> None:
    """A git failure the store did not foresee (here: the remote's branch is gone) becomes
    a GitStoreError with the git command and its stderr, never a traceback."""
    _, watcher, _ = setup(origin, tmp_path)
    git(origin, "update-ref", "-d", "refs/heads/main")
    with pytest.raises(GitStoreError) as info:
        reconcile_once(WatchConfig(watcher, backoff_s=0))
    assert "main" in info.value.format()


@pytest.mark.parametrize("damage", ["truncated", "not-yaml"])
def test_a_damaged_status_file_in_the_watcher_checkout_is_restored_never_committed(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    """runs_status.yaml cut short (a full disk, a copy interrupted) or overwritten with junk
    in the watcher's checkout: the watcher restores tunegit's last committed record, says so,
    and reconciles from there; the damaged bytes are never committed or pushed."""
    _, watcher, _ = setup(origin, tmp_path)
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    status = watcher / "experiments" / "exp1" / STATUS_FILE
    good = git(watcher, "show", f"HEAD:experiments/exp1/{STATUS_FILE}")
    assert status.read_text() == good
    status.write_text(good[: len(good) // 3] if damage == "truncated" else "{{{ not yaml\n")
    capsys.readouterr()
    code = tunegit(["-C", str(watcher), "reconcile", "--once"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code == 0, captured.err
    said = captured.out + captured.err
    assert f"experiments/exp1/{STATUS_FILE}" in said and "restored" in said
    for ref in ("HEAD", "origin/main"):
        for sha in git(watcher, "rev-list", ref).split():
            text = git(watcher, "show", f"{sha}:experiments/exp1/{STATUS_FILE}") \
                if f"experiments/exp1/{STATUS_FILE}" in git(
                    watcher, "ls-tree", "-r", "--name-only", sha) else None
            if text is not None:
                assert "run_group:" in text and "runs:" in text, sha
    jobs = {(run, key): step.job_id for run, key, step in parse(good).steps() if step.job_id}
    after = parse(status.read_text())
    assert jobs and all(after.step(run, key).job_id == job
                        for (run, key), job in jobs.items())  # the submitted job still tracked
    assert list((watcher / ".git" / "tunegit-stray").rglob(STATUS_FILE))  # damaged copy kept
    assert git(watcher, "status", "--porcelain") == ""


def test_a_committed_symlink_experiment_is_never_run_and_nothing_is_written_outside(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    laptop, watcher, _ = setup(origin, tmp_path)
    outside = tmp_path / "outside" / "evil"
    outside.mkdir(parents=True)
    (outside / "experiment.yaml").write_text(tiny_plan("evil"))
    (laptop / "experiments" / "evil").symlink_to(outside)
    commit_all(laptop, "A link to an unreviewed plan")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert "experiments/evil is a symbolic link: never run" in err and "Traceback" not in err
    assert sorted(p.name for p in outside.iterdir()) == ["experiment.yaml"]
    assert not (tmp_path / "outside" / ".tunegit").exists()
    assert "job_id:" in git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")  # exp1 ran
    assert git(watcher, "status", "--porcelain") == ""


def test_a_force_push_that_drops_only_status_commits_gets_them_pushed_again(
        origin: Path, tmp_path: Path) -> None:
    """The decision for force-pushes: tunegit's own records are re-pushed (replayed on the
    rewritten branch) when the force-push dropped only them; anything else rewritten stops
    the watcher (the test above). Never a lost record, never a rewritten human commit."""
    laptop, watcher, plan_sha = setup(origin, tmp_path)
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    recorded = git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")
    assert "job_id:" in recorded
    git(laptop, "push", "-q", "--force", "origin", f"{plan_sha}:main")  # drops the record
    assert git(origin, "rev-parse", "main").strip() == plan_sha
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    main = history(origin)
    assert plan_sha in main and main[0] != plan_sha and GitStore(watcher).is_own(main[0])
    again = git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")
    assert parse(again).steps() and all(
        parse(again).step(run, key).job_id == step.job_id
        for run, key, step in parse(recorded).steps() if step.job_id)


def test_a_direct_push_that_edits_status_by_hand_is_undone_in_a_commit_naming_it(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A push past guard-status (a direct push to main) marks a failed fine-tune completed:
    the watcher must not evaluate a checkpoint that does not exist; it puts tunegit's record
    back, in a status commit that names the edit and its author, and says so in its log."""
    laptop, watcher, _ = setup(origin, tmp_path)
    rel = f"experiments/exp1/{STATUS_FILE}"
    for _ in range(60):
        reconcile_once(WatchConfig(watcher, backoff_s=0))
        record = parse(git(origin, "show", f"main:{rel}"))
        if all(step.status in ("failed", "blocked", "skipped")
               for _, key, step in record.steps() if key is None):
            break
        time.sleep(1)
    run = next(r for r, key, step in record.steps() if key is None and step.status != "skipped")
    before = record.step(run, None)
    git(laptop, "pull", "-q", "--ff-only")
    status = laptop / rel
    edited = record.with_step(run, None, dataclasses.replace(before, status="completed",
                                                             reason=None, message=None))
    status.write_text(dump(edited))
    edit = commit_all(laptop, "Mark it done", author="Mallory")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    out = capsys.readouterr().out
    assert f"commit {edit[:10]} by Mallory" in out and "restored" in out, out
    after = parse(git(origin, "show", f"main:{rel}"))
    assert after.step(run, None) == before  # tunegit's record, not the edit
    assert all(step.status != "submitted" for _, key, step in after.steps() if key)
    log = git(origin, "log", "--format=%s%n%b", "-1", "--grep=record restored", "main")
    assert "status(exp1): tunegit's record restored" in log
    assert f"commit {edit[:10]} by Mallory <author@example.com>" in log
    assert GitStore(watcher).is_own(git(origin, "log", "-1", "--format=%H",
                                        "--grep=record restored", "main").strip())
    assert git(watcher, "status", "--porcelain") == ""


def test_a_plan_change_pushed_under_a_running_job_leaves_its_files_as_submitted(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A direct push changes the learning rate of a run whose job is running: its
    finetune.yaml must not change under the job (the record says what ran), and the watcher
    says so. The job really runs: the site's activate line keeps it busy for a while."""
    laptop, watcher, _ = setup(origin, tmp_path)
    site = laptop / "sites" / "local.yaml"
    site.write_text(site.read_text() + "environment: {activate: 'sleep 30'}\n")
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", "experiments/exp1"]) == 0
    commit_all(laptop, "A slow site")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    config = next((watcher / ".tunegit" / "outputs" / "exp1").glob("*/finetune.yaml"))
    submitted = config.read_text()
    assert "lr: 0.01" in submitted
    git(laptop, "pull", "-q", "--ff-only")
    plan = laptop / "experiments" / "exp1" / "experiment.yaml"
    plan.write_text(plan.read_text().replace("learning_rate: 1.0e-2", "learning_rate: 5.0e-3"))
    # (the local check refuses it against origin/main; pushed without the hooks)
    assert tunegit(["-C", str(laptop), "check", "-q", "experiments/exp1"]) == 1
    commit_all(laptop, "Lower the learning rate", author="Mallory")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert f"run {config.parent.name}: the plan changed under its " in err, err
    assert "files are kept as submitted" in err and "Traceback" not in err
    assert config.read_text() == submitted  # lr: 0.01, as the job was started with
