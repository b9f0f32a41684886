"""The published hooks under the real `pre-commit`, on real `git commit`s in a temp repo.

The hooks of .pre-commit-hooks.yaml are copied under `repo: local` with
`language: system` (installing a remote hook repo needs the network), calling the
`tunegit` first on PATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from gitfixtures import REPO, commit_all, git
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan
from tunegit.core import status as status_mod
from tunegit.core.status import Step

pytestmark = [pytest.mark.usefixtures("git_env", "tunegit_on_path"), pytest.mark.slow]
PLAN = "experiments/exp1/experiment.yaml"


def local_config() -> str:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    for hook in hooks:
        hook["language"] = "system"
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}, sort_keys=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    make_repo(repo, files=LOCAL_FILES, gitignore=GITIGNORE)
    (repo / ".pre-commit-config.yaml").write_text(local_config())
    commit_all(repo, "Seed with hooks")
    proc = subprocess.run(["pre-commit", "install"], cwd=repo, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return repo


def try_commit(repo: Path, message: str, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    git(repo, "add", "-A")
    return subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, check=False)


def write_good_plan(repo: Path) -> None:
    (repo / PLAN).parent.mkdir(parents=True, exist_ok=True)
    (repo / PLAN).write_text(tiny_plan("exp1"))
    proc = subprocess.run(["tunegit", "check", "--write", "-q", "experiments/exp1"], cwd=repo,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_bad_plan_is_refused_with_file_and_line(repo: Path) -> None:
    (repo / PLAN).parent.mkdir(parents=True)
    (repo / PLAN).write_text(tiny_plan("exp1", training={"batch_size": 0}))
    proc = try_commit(repo, "Bad plan")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "tunegit check" in output and "Failed" in output
    assert f"{PLAN}:15:" in output and "training.batch_size" in output
    assert git(repo, "log", "--format=%s").splitlines() == ["Seed with hooks"]


def test_a_stale_runs_plan_is_refused_with_the_fix(repo: Path) -> None:
    write_good_plan(repo)
    assert try_commit(repo, "Plan exp1").returncode == 0
    (repo / PLAN).write_text(tiny_plan("exp1", training={"learning_rate": 5.0e-3}))
    proc = try_commit(repo, "Change lr, forget to render")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "experiments/exp1/runs_plan.md: is stale" in output
    assert "run `tunegit check --write experiments/exp1` and commit the result" in output


def test_a_good_plan_passes(repo: Path) -> None:
    write_good_plan(repo)
    proc = try_commit(repo, "Plan exp1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "Plan exp1"


def test_hand_edits_to_runs_status_are_refused_but_tunegit_may_commit(repo: Path) -> None:
    write_good_plan(repo)
    assert try_commit(repo, "Plan exp1").returncode == 0
    path = repo / "experiments/exp1/runs_status.yaml"
    status = status_mod.parse(path.read_text())
    edited = status.with_step("tiny-llama_rank8", None, Step("completed", job_id="42"))
    path.write_text(status_mod.dump(edited))

    proc = try_commit(repo, "Mark it done by hand")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert ("experiments/exp1/runs_status.yaml: runs.tiny-llama_rank8.finetune: record edited "
            "by hand (status pending -> completed, job None -> 42)") in output
    assert "written by tunegit's watcher only" in output

    proc = try_commit(repo, "status(exp1): 1 completed", env={"TUNEGIT_COMMITTER": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_adding_runs_through_check_write_is_not_a_hand_edit(repo: Path) -> None:
    write_good_plan(repo)
    assert try_commit(repo, "Plan exp1").returncode == 0
    (repo / PLAN).write_text(tiny_plan("exp1", factors={"lora_rank": [8, 32]}))
    subprocess.run(["tunegit", "check", "--write", "-q", "experiments/exp1"], cwd=repo,
                   check=True, capture_output=True)
    proc = try_commit(repo, "Add rank 32")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_completed_runs_in_one_experiment_leave_the_hooks_passing_on_the_others(
        repo: Path) -> None:
    """History grows (another experiment's runs completed: the status commit of a watcher)
    and moves every plan's history-based figures; `pre-commit run --all-files` still passes
    on the untouched plans, which are stale only when their plan or site changes."""
    history = REPO / "tests" / "fixtures" / "history" / "demo_capitalization"
    demo = repo / "experiments" / "demo_capitalization"
    write_good_plan(repo)
    demo.mkdir(parents=True)
    (demo / "experiment.yaml").write_text((history / "experiment.yaml").read_text())
    proc = subprocess.run(["tunegit", "check", "--write", "-q", str(demo)], cwd=repo,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert try_commit(repo, "Plans exp1 and demo_capitalization").returncode == 0
    # The watcher's status commit: both demo fine-tunes completed.
    (demo / "runs_status.yaml").write_text((history / "runs_status.yaml").read_text())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "status(demo_capitalization): 2 completed",
        env={"TUNEGIT_COMMITTER": "1"})
    proc = subprocess.run(["pre-commit", "run", "--all-files", "--verbose"], cwd=repo,
                          capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "estimates would change with 2 new completed run(s)" in proc.stdout, proc.stdout
