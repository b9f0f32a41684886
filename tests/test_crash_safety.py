"""Crash safety on the real local SLURM and real git: `tunegit reconcile --once` is killed
with SIGKILL at every step of a cycle (TUNEGIT_CRASH_AT, tunegit.edges.crashpoints), then run
again. In every case: each deterministic job name was given to sbatch once and SLURM holds
one job of that name, runs_status.yaml on the remote records each step once with the id
SLURM has for it, the history is linear status commits on top of the plan, and the
watcher's checkout is clean.

Jobs are kept from running with the site's own `extra_sbatch: [--begin=now+1hour]` (a real
SLURM feature), so a pending job is what the restarted watcher must find again: the case
where a duplicate would cost a GPU allocation. The array case lets its jobs run: their
model is absent, so they fail in a second and the restart must find a job that already
ended (squeue keeps it for MinJobAge). The only stand-ins are `sbatch` wrappers first on
PATH that log every call and exec the real sbatch; one of them also kills the watcher
after its N-th real submission, a crash point inside the executor's loop of sbatch calls
that no environment variable reaches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from gitfixtures import AUTOMATION, REPO, clone, commit_all, git, tunegit
from planfixtures import WHOLE_EPOCH, tiny_plan, weightless_model
from test_slurm_executor import cluster_state
from tunegit.core.states import LIVE_STATES, TERMINAL_STATES
from tunegit.edges.crashpoints import ENV, POINTS
from tunegit.edges.gitstore import GitStore
from tunegit.edges.workspace import STATUS_FILE

_DOWN = cluster_state()
pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.skipif(bool(_DOWN), reason=_DOWN),
              pytest.mark.usefixtures("git_env")]

SITE = "crash-slurm"


def crash_plan(name: str, site: str, ranks: list[int]) -> str:
    """One tiny run per rank; the model has no weights here (``weightless_model`` in the
    watcher's checkout: the preflight passes), so a job that starts fails in a second."""
    return tiny_plan(name, question="Does a killed watcher ever submit twice or lose a status "
                     "change?", site=site, models=["tunegit/tiny-llama"],
                     factors={"lora_rank": ranks}, training=WHOLE_EPOCH)


def site_text(hold: bool) -> str:
    text = (REPO / "sites/local-slurm.yaml").read_text()
    text = text.replace("  poll_interval_s: 2\n", "  poll_interval_s: 2\n"
                        + ("  extra_sbatch: ['--begin=now+1hour']\n" if hold else ""))
    return text + f"environment: {{variables: {{PYTHONPATH: '{AUTOMATION}'}}}}\n"


# The script's #SBATCH options, as one line (sbatch takes them from the script itself).
SBATCH_HEADER = '$(grep "^#SBATCH " "${@: -1}" 2>/dev/null | cut -d" " -f2- | tr "\\n" " ")'


class Slurm:
    """The sbatch wrapper's log, and what SLURM itself holds, by job name."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.log = tmp_path / "sbatch-calls.log"
        self.bin = tmp_path / "slurm-bin"
        self.bin.mkdir()
        real = shutil.which("sbatch")
        assert real
        wrapper = self.bin / "sbatch"
        # Logs the call with the script's #SBATCH options (what sbatch reads), submits for
        # real, then (when asked) dies like the watcher's kill -9: the parent is the watcher
        # process (subprocess.run, no shell in between).
        wrapper.write_text(
            "#!/bin/bash\n"
            f'echo "sbatch $* {SBATCH_HEADER}" >> {self.log}\n'
            f'"{real}" "$@"; rc=$?\n'
            f'n=$(grep -c . {self.log})\n'
            'if [ -n "$KILL_WATCHER_AFTER_SBATCH" ] && [ "$n" = "$KILL_WATCHER_AFTER_SBATCH" ];'
            " then kill -9 $PPID; fi\n"
            "exit $rc\n")
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")
        self.names: set[str] = set()

    def submitted(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        text = self.log.read_text() if self.log.exists() else ""
        for line in text.splitlines():
            for arg in line.split():
                if arg.startswith("--job-name="):
                    name = arg.split("=", 1)[1]
                    counts[name] = counts.get(name, 0) + 1
        self.names |= counts.keys()
        return counts

    @staticmethod
    def ids(name: str) -> list[str]:
        out = subprocess.run(["squeue", "-h", "-t", "all", f"--name={name}", "-o", "%i"],
                             capture_output=True, text=True, check=True).stdout
        return out.split()

    def cancel(self) -> None:
        self.submitted()  # every name in the log, also when the test failed early
        for name in self.names:
            subprocess.run(["scancel", f"--name={name}"], check=False)


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    s = Slurm(tmp_path, monkeypatch)
    yield s
    s.cancel()


def setup_repo(origin: Path, tmp_path: Path, ranks: list[int], hold: bool) -> tuple[Path, str]:
    laptop, watcher = clone(origin, tmp_path / "laptop"), tmp_path / "watcher"
    name = f"crash_{uuid.uuid4().hex[:8]}"
    (laptop / f"sites/{SITE}.yaml").write_text(site_text(hold))
    plan = laptop / "experiments" / name / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(crash_plan(name, SITE, ranks))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", f"experiments/{name}"]) == 0
    commit_all(laptop, f"Plan {name}")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    clone(origin, watcher, name="tunegit watcher")
    weightless_model(watcher)
    return watcher, name


def reconcile(watcher: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(AUTOMATION), **env}
    return subprocess.run([sys.executable, "-m", "tunegit", "-C", str(watcher), "reconcile",
                           "--once"], capture_output=True, text=True, env=full, timeout=300)


def check_invariants(origin: Path, watcher: Path, name: str, slurm: Slurm,
                     plan_sha: str) -> dict[str, dict[str, object]]:
    """No duplicate, no lost or contradictory status, a clean checkout, linear history."""
    counts = slurm.submitted()
    assert counts and all(n == 1 for n in counts.values()), f"submitted twice: {counts}"
    held = {}  # SLURM's own answer: name -> its one job id (an array's tasks share it)
    for job in counts:
        bases = {i.split("_")[0] for i in slurm.ids(job)}
        assert len(bases) == 1, f"SLURM holds {slurm.ids(job)} for {job}"
        held[job] = bases.pop()
    status = yaml.safe_load(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}"))
    steps = {}
    for run, rec in status["runs"].items():
        steps[f"{run}/ft"] = rec["finetune"]
        steps.update({f"{run}/{k}": v for k, v in rec["evaluations"].items()})
    for label, step in steps.items():  # every step went in, and is no longer pending
        assert step["status"] in LIVE_STATES | TERMINAL_STATES, (label, step)
        if step["status"] == "blocked" and not step.get("job_id"):
            continue  # its fine-tune had failed before it could be chained: truthful
        assert step.get("job_id") and step.get("job_name"), (label, step)
        if step["job_name"] in held:  # a plain job: the very id SLURM has for its name
            assert step["job_id"] == held[step["job_name"]], (label, step, held)
    recorded = {str(s["job_id"]).split("_")[0] for s in steps.values() if s.get("job_id")}
    assert recorded == set(held.values()), (recorded, held)  # nothing lost, nothing invented
    assert git(watcher, "status", "--porcelain") == ""
    assert git(watcher, "rev-parse", "HEAD") == git(origin, "rev-parse", "main")
    shas = git(origin, "rev-list", "--first-parent", f"{plan_sha}..main").split()
    store = GitStore(watcher)
    for sha in shas:  # only tunegit's own commits, each touching runs_status.yaml only
        assert store.is_own(sha)
        assert store.files_of(sha) == [f"experiments/{name}/{STATUS_FILE}"]
    assert git(origin, "merge-base", "--is-ancestor", plan_sha, "main") == ""
    return steps


ENGINE_POINTS = POINTS[:5]


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_point_of_a_cycle_then_restart(origin: Path, tmp_path: Path,
                                                    slurm: Slurm, point: str) -> None:
    watcher, name = setup_repo(origin, tmp_path, [8], hold=True)
    plan_sha = git(watcher, "rev-parse", "HEAD").strip()
    crashed = reconcile(watcher, **{ENV: point})
    assert crashed.returncode == -9, (crashed.stdout, crashed.stderr)
    for _ in range(2):  # the restart, then a quiet cycle that must change nothing
        again = reconcile(watcher)
        assert again.returncode == 0, again.stderr
    steps = check_invariants(origin, watcher, name, slurm, plan_sha)
    assert {s["status"] for s in steps.values()} == {"submitted"}
    assert len(slurm.submitted()) == 2  # the fine-tune and its chained evaluation
    log = git(origin, "log", "-p", "main", "--", f"experiments/{name}/{STATUS_FILE}")
    for job, step in ((s["job_name"], s) for s in steps.values()):
        assert f"job_id: '{step['job_id']}'" in log or f"job_id: {step['job_id']}" in log, job


@pytest.mark.parametrize("nth", [1, 2])
def test_kill_between_two_sbatch_calls_then_restart(origin: Path, tmp_path: Path,
                                                    slurm: Slurm, nth: int) -> None:
    """A job array of two fine-tunes, then two chained evaluations (three sbatch calls);
    the watcher dies right after the nth. The jobs run (and fail in a second: no model)."""
    watcher, name = setup_repo(origin, tmp_path, [8, 32], hold=False)
    plan_sha = git(watcher, "rev-parse", "HEAD").strip()
    crashed = reconcile(watcher, KILL_WATCHER_AFTER_SBATCH=str(nth))
    assert crashed.returncode == -9, (crashed.stdout, crashed.stderr)
    assert sum(slurm.submitted().values()) == nth
    for _ in range(3):
        again = reconcile(watcher)
        assert again.returncode in (0, 1), again.stderr  # 1: a job failed (no model)
        assert "internal error" not in again.stderr
    check_invariants(origin, watcher, name, slurm, plan_sha)
    calls = len(slurm.submitted())  # one array (two tasks) + two chained evaluations
    assert calls == 3 or (calls == 1 and nth == 1), slurm.submitted()


def test_killed_again_while_recovering(origin: Path, tmp_path: Path,
                                               slurm: Slurm) -> None:
    watcher, name = setup_repo(origin, tmp_path, [8], hold=True)
    plan_sha = git(watcher, "rev-parse", "HEAD").strip()
    # Killed after submitting; killed again after recording the adopted jobs; killed again
    # before pushing the commit that recovered that write: three crashes, one cycle's work.
    for point in ("after_sbatch", "after_status_write", "before_push"):
        assert reconcile(watcher, **{ENV: point}).returncode == -9, point
    assert reconcile(watcher).returncode == 0
    check_invariants(origin, watcher, name, slurm, plan_sha)
    assert len(slurm.submitted()) == 2
