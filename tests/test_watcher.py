"""The watcher on real git: which experiments a cycle picks, one commit per cycle, pushes,
the protected branch only, crash recovery, the lock; and the whole GitOps loop end to end."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitfixtures import AUTOMATION, clone, commit_all, git, tunegit
from planfixtures import tiny_plan
from tunegit.core import status as status_mod
from tunegit.core.records import CycleResult, Transition
from tunegit.core.states import LIVE_STATES, PENDING, SUBMITTED, TERMINAL_STATES
from tunegit.core.status import Step
from tunegit.edges.gitstore import GitStore, trailers
from tunegit.edges.plandiff import immutability_problems
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.files import read_status, write_if_changed
from tunegit.loop.cycle import (
    STATE_FILE,
    WatchConfig,
    WatchState,
    has_work,
    locked,
    reconcile_once,
    select,
)

pytestmark = pytest.mark.usefixtures("git_env")


# --- pure ---------------------------------------------------------------------------------------

def test_select_changed_live_and_active_existing_only() -> None:
    names = ["a", "b", "c", "d"]
    assert select(names, {"a", "gone"}, {"c"}, ["d"]) == ("a", "c", "d")
    assert select(names, None, set(), []) == tuple(names)
    assert select(names, set(), set(), []) == ()


def test_a_failed_push_is_reported_even_when_nothing_else_ran() -> None:
    from tunegit.edges.gitstore import PushResult
    from tunegit.loop.cycle import CycleReport
    report = CycleReport("a" * 40, (), push=PushResult(False, 3, "could not read from remote"))
    assert report.summary() == ("aaaaaaaaaa: nothing to reconcile; push failed after 3 "
                                "attempt(s), kept local: could not read from remote")
    assert CycleReport("a" * 40, ()).summary() == "aaaaaaaaaa: nothing to reconcile"


def test_has_work() -> None:
    s = status_mod.StatusFile("e", {"r": status_mod.RunStatus(Step("completed"),
                                                              {"k": Step(PENDING)})})
    assert has_work(s, pending=True) and not has_work(s, pending=False)
    live = s.with_step("r", "k", Step(SUBMITTED, job_id="1"))
    assert has_work(live, pending=False)
    # Held by the preflight: looked at again each cycle, so it proceeds once fixed.
    held = s.with_step("r", "k", Step("blocked", reason="Preflight", message="model missing"))
    assert has_work(held, pending=True) and not has_work(held, pending=False)
    dead = s.with_step("r", "k", Step("blocked", reason="DependencyFailed"))
    assert not has_work(dead, pending=True)


# --- the wiring, with a scripted cycle (no jobs run) --------------------------------------------

class ScriptedCycle:
    """Moves the first pending step of each experiment to `submitted` (one per call)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.plan_commits: list[str | None] = []

    def __call__(self, ws: Workspace, experiments: Sequence[str], *, now: str,
                 plan_commit: str | None, executor_for: Any) -> CycleResult:
        self.calls.append(tuple(experiments))
        self.plan_commits.append(plan_commit)
        transitions, written = [], []
        for name in experiments:
            path = ws.experiment_dir(name) / STATUS_FILE
            status = read_status(path)
            assert status is not None
            pending = [(r, k) for r, k, s in status.steps() if s.status == PENDING]
            if not pending:
                continue
            run, key = pending[0]
            job = f"job-{len(self.calls)}"
            status = status.with_step(run, key, Step(SUBMITTED, job_id=job, last_updated=now))
            write_if_changed(path, status_mod.dump(status))
            transitions.append(Transition(name, run, key, PENDING, SUBMITTED, job))
            written.append(path)
        return CycleResult(tuple(transitions), tuple(written), 1, 0)


def plan_and_push(repo: Path, name: str, ranks: Sequence[int] = (8,),
                  branch: str = "main") -> str:
    path = repo / "experiments" / name / "experiment.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tiny_plan(name, factors={"lora_rank": list(ranks)}))
    assert tunegit(["-C", str(repo), "check", "--write", "-q", f"experiments/{name}"]) == 0
    sha = commit_all(repo, f"Plan {name}")
    git(repo, "push", "-q", "origin", f"HEAD:{branch}")
    return sha


def test_cycles_pick_changed_and_live_experiments_and_commit_once(origin: Path,
                                                                  tmp_path: Path) -> None:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    plan_and_push(laptop, "exp1", (8, 32))
    cycle = ScriptedCycle()
    config = WatchConfig(watcher, backoff_s=0)

    def once() -> Any:
        return reconcile_once(config, cycle=cycle, executor_for=lambda site: None,
                              now=lambda: "2025-10-22T10:00:00Z", sleep=lambda s: None)

    report = once()
    assert cycle.calls == [("exp1",)]
    assert report.commit and report.push and report.push.pushed
    head = git(origin, "log", "-1", "--format=%B", "main")
    assert head.splitlines()[0] == "status(exp1): 1 submitted"
    plan_sha = git(laptop, "rev-parse", "HEAD").strip()
    assert trailers(head)["Tunegit-Plan-Commit"] == [plan_sha] == cycle.plan_commits
    state = WatchState.load(watcher / ".git" / STATE_FILE)
    assert state.reconciled == plan_sha and state.active == ("exp1",)

    # A plan on another branch is never acted on; exp1 is live, so it is picked again.
    git(laptop, "checkout", "-q", "-b", "feature")
    plan_and_push(laptop, "exp2", branch="feature")
    once()
    assert cycle.calls[-1] == ("exp1",)
    assert len(git(origin, "log", "--format=%H", "main").split()) == 4  # seed, plan, 2 status

    # A human merge to main is picked up; the watcher's own commits never trigger.
    git(laptop, "checkout", "-q", "main")
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    exp3_sha = plan_and_push(laptop, "exp3")
    report = once()
    assert cycle.calls[-1] == ("exp1", "exp3")
    assert cycle.plan_commits[-1] == exp3_sha  # the plan, not the watcher's own last commit
    once()
    assert cycle.plan_commits[-1] == exp3_sha
    assert report.commit is not None
    subject = git(origin, "log", "-1", "--format=%s", "main").strip()
    assert subject == "status: 2 experiments, 2 submitted"


def test_a_crash_between_write_and_commit_loses_nothing(origin: Path, tmp_path: Path) -> None:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    plan_and_push(laptop, "exp1")
    git(watcher, "pull", "-q", "--ff-only", "origin", "main")
    path = watcher / "experiments/exp1" / STATUS_FILE
    status = status_mod.parse(path.read_text())
    path.write_text(status_mod.dump(status.with_step("tiny-llama_rank8", None,
                                                     Step(SUBMITTED, job_id="x1"))))
    report = reconcile_once(WatchConfig(watcher), cycle=ScriptedCycle(),
                            executor_for=lambda site: None)
    assert report.push is not None and report.push.pushed
    shown = git(origin, "log", "--format=%s", "main").splitlines()
    assert "status(exp1): status files updated" in shown
    assert "job_id: x1" in git(origin, "show", f"main:experiments/exp1/{STATUS_FILE}")


def test_a_human_edit_in_the_watcher_checkout_stops_the_cycle(origin: Path,
                                                              tmp_path: Path) -> None:
    watcher = clone(origin, tmp_path / "w")
    (watcher / "sites/local.yaml").write_text("# edited on the cluster\n")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1


def test_untracked_results_in_the_watcher_checkout_never_block_its_fast_forward(
        origin: Path, tmp_path: Path) -> None:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    plan_and_push(laptop, "exp1")
    git(watcher, "pull", "-q", "--ff-only", "origin", "main")
    # Someone ran `tunegit results` and `tunegit report` in the watcher's checkout ...
    stray = watcher / "experiments/exp1/results.md"
    stray.write_text("# an old local copy\n")
    (watcher / "experiments/exp1/report.html").write_text("<p>old</p>\n")
    # ... and the branch meanwhile gained a committed results.md at that path.
    (laptop / "experiments/exp1/results.md").write_text("# Results: exp1 (committed)\n")
    commit_all(laptop, "Results of exp1")
    git(laptop, "push", "-q", "origin", "main")

    report = reconcile_once(WatchConfig(watcher, backoff_s=0), cycle=ScriptedCycle(),
                            executor_for=lambda site: None, now=lambda: "2025-10-22T10:00:00Z")
    assert git(watcher, "rev-parse", "HEAD") == git(origin, "rev-parse", "main")
    assert stray.read_text() == "# Results: exp1 (committed)\n"
    kept = watcher / ".git/tunegit-stray/2025-10-22T100000Z/experiments/exp1"
    assert (kept / "results.md").read_text() == "# an old local copy\n"  # nothing is lost
    assert (kept / "report.html").read_text() == "<p>old</p>\n"
    assert report.set_aside == ("experiments/exp1/report.html", "experiments/exp1/results.md")
    assert "set aside 2 untracked results file(s) in .git/tunegit-stray/" in report.summary()


def test_a_second_watcher_on_the_same_checkout_skips(origin: Path, tmp_path: Path) -> None:
    watcher = clone(origin, tmp_path / "w")
    with locked(watcher / ".git") as ok:
        assert ok
        report = reconcile_once(WatchConfig(watcher), cycle=ScriptedCycle())
    assert report.skipped.startswith("another reconcile holds the lock")


# --- end to end: laptop -> PR branch -> main -> watcher -> status commits -> history ------------

TRAIN = importlib.util.find_spec("torchtune") is not None and \
    importlib.util.find_spec("inspect_ai") is not None


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.skipif(not TRAIN, reason="needs the train extra (pip install -e '.[train]')")
def test_gitops_end_to_end(origin: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    laptop = clone(origin, tmp_path / "laptop", name="Alice Planner")
    watcher = clone(origin, tmp_path / "cluster", name="tunegit watcher")

    # This experiments repo is not tunegit's own repo (no automation/ in it): the site says
    # where the job scripts import tunegit from, as an installed site would.
    with (laptop / "sites/local.yaml").open("a") as f:
        f.write(f"environment: {{variables: {{PYTHONPATH: '{AUTOMATION}'}}}}\n")
    commit_all(laptop, "Site: where tunegit lives on this machine")
    git(laptop, "push", "-q", "origin", "main")

    # The laptop opens a branch with a new experiment; the checks pass; it is merged.
    git(laptop, "checkout", "-q", "-b", "plan-demo")
    plan = laptop / "experiments/demo/experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("demo"))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", "experiments/demo"]) == 0
    commit_all(laptop, "Plan demo", author="Alice Planner")
    assert tunegit(["-C", str(laptop), "check", "-q"]) == 0
    capsys.readouterr()
    assert tunegit(["-C", str(laptop), "diff", "main", "HEAD"]) == 0
    assert "| `demo` | added | +1 | +1 |" in capsys.readouterr().out
    git(laptop, "checkout", "-q", "main")
    git(laptop, "merge", "-q", "--no-ff", "-m", "Merge plan-demo", "plan-demo")
    git(laptop, "push", "-q", "origin", "main")

    # The watcher reconciles in a loop until every step is terminal.
    assert tunegit(["-C", str(watcher), "tiny-model", "--pretrain-steps", "0"]) == 0
    deadline = time.monotonic() + 420
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0, \
            capsys.readouterr().err
        status = yaml.safe_load(git(origin, "show", f"main:experiments/demo/{STATUS_FILE}"))
        states = [status["runs"][r]["finetune"]["status"] for r in status["runs"]] + [
            e["status"] for r in status["runs"].values() for e in r["evaluations"].values()]
        if all(s in TERMINAL_STATES for s in states):
            break
        assert not any(s not in LIVE_STATES | TERMINAL_STATES | {PENDING} for s in states)
        time.sleep(2)
    run = status["runs"]["tiny-llama_rank8"]
    assert run["finetune"]["status"] == "completed", status
    assert all(e["status"] == "completed" for e in run["evaluations"].values()), \
        yaml.safe_dump(run["evaluations"])
    # The results sit beside the plan on the branch, committed by the watcher itself.
    results_csv = git(origin, "show", "main:experiments/demo/results.csv")
    assert results_csv.startswith("run,task,epoch,scorer,metric,score,n,ci_low,ci_high,")
    assert any(line.startswith("tiny-llama_rank8,") for line in results_csv.splitlines())
    added = git(origin, "log", "--format=%H", "--diff-filter=A", "main", "--",
                "experiments/demo/results.md").split()
    assert len(added) == 1 and GitStore(watcher).is_own(added[0])
    subjects = git(origin, "log", "--format=%s", "main").splitlines()
    status_commits = [s for s in subjects if s.startswith("status(demo)")]
    assert status_commits and all(GitStore(watcher).is_own(sha) for sha in git(
        origin, "log", "--format=%H", "--grep=^status(demo)", "main").split())

    # The laptop pulls; history shows the whole timeline.
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    capsys.readouterr()
    assert tunegit(["-C", str(laptop), "history", "demo/tiny-llama_rank8"]) == 0
    timeline = capsys.readouterr().out
    assert "Alice Planner" in timeline and "planned (Plan demo)" in timeline
    for what in ("finetune: pending -> submitted", "-> completed", "job local-"):
        assert what in timeline, timeline
    job_id = run["finetune"]["job_id"]
    assert job_id in timeline

    # A second change to the submitted run is refused by check --base and by diff.
    git(laptop, "checkout", "-q", "-b", "tweak")
    plan.write_text(tiny_plan("demo", training={"learning_rate": 5.0e-3}))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", "experiments/demo"]) == 0
    problems = immutability_problems(Workspace(laptop), "origin/main")
    assert len(problems) == 1 and "already submitted" in problems[0].message
    assert problems[0].format().startswith("experiments/demo/experiment.yaml:")
    capsys.readouterr()
    assert tunegit(["-C", str(laptop), "check", "--base", "origin/main", "experiments/demo"]) == 1
    assert "already submitted" in capsys.readouterr().err
    commit_all(laptop, "Tweak lr")
    assert tunegit(["-C", str(laptop), "diff", "origin/main", "HEAD"]) == 1
    assert "submitted runs are immutable" in capsys.readouterr().out


@pytest.mark.usefixtures("tunegit_on_path")
def test_watch_daemon_cycles_and_stops_cleanly_on_sigterm(origin: Path, tmp_path: Path) -> None:
    import signal
    import subprocess

    watcher = clone(origin, tmp_path / "w")
    proc = subprocess.Popen(["tunegit", "-C", str(watcher), "watch", "--interval", "0.5",
                             "--min-gap", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    state = watcher / ".git" / STATE_FILE
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "SIGTERM: finishing the current cycle" in out and out.rstrip().endswith("stopped")
    assert "nothing to reconcile" in out
