"""docs/your-repo.md, followed step by step in a temp dir: tunegit pip-installed into a fresh
venv without the train extra, `tunegit init lab`, the first commit, this repository's hooks
through `pre-commit try-repo`, a plan for two model families, a pull-request branch's
`tunegit diff`, the merge into a bare origin, and `tunegit reconcile --once` in the
watcher's clone committing status (every step blocked: no models, no train extra), the
models arriving and the jobs failing for real, `tunegit status` and `history`, and a new
attempt asked for with `tunegit retry` in a pull request a reviewer merges.

The install takes about 40 s (and pre-commit's own hook environment as much again), the
price of testing what a lab gets rather than this checkout on PYTHONPATH. No job trains:
the venv has no torchtune (the models are config.json only), so each job fails at once and
the watcher records why; that is the loop this test is about.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gitfixtures import REPO, git
from planfixtures import weightless_model
from tunegit import version
from tunegit.core.states import TERMINAL_STATES
from tunegit.edges.gitstore import GitStore

pytestmark = [pytest.mark.usefixtures("git_env"), pytest.mark.slow]
GUIDE = REPO / "docs" / "your-repo.md"
EXP = "cap_5L_two_families_2026-01-15"
MODELS = ("meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct")


def checkout_copy(dest: Path) -> Path:
    """The files git would commit from this checkout (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co",
                             "--exclude-standard"], capture_output=True, text=True,
                            check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src, out = REPO / rel, dest / rel
        if not src.is_symlink() and not src.is_file():
            continue  # deleted in the working tree
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, out)
    return dest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's environment without PYTHONPATH: every tunegit here is an installed one.
    RUSTUP_HOME: where rustup's shims are on PATH, creating a venv writes their settings
    into $HOME, which must stay empty."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            "RUSTUP_HOME": str(tmp_path / "rustup")}


@pytest.fixture
def installed(tmp_path: Path, env: dict[str, str]) -> Path:
    """Step 1: a fresh venv with `pip install` of this checkout, no extras. Its bin dir."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True)
    source = checkout_copy(tmp_path / "tunegit-src")
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv / "bin"


def passed(output: str, hook_name: str) -> bool:
    """pre-commit's `NAME.....Passed` line for the hook."""
    return re.search(rf"^{re.escape(hook_name)}\.+Passed$", output, flags=re.M) is not None


def run(cwd: Path, env: dict[str, str], *argv: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout}{proc.stderr}"
    return proc


def try_repo(lab: Path, env: dict[str, str]) -> str:
    """This repository's published hooks on every file of the lab (as its config would)."""
    pre_commit = Path(sys.executable).parent / "pre-commit"
    return run(lab, env, pre_commit, "try-repo", REPO, "--all-files").stdout


def guide_commands() -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S))


def test_the_guide_s_install_lines_name_this_release() -> None:
    text = GUIDE.read_text() + (REPO / "docs" / "operators.md").read_text()
    pins = set(re.findall(r"git\+https://github\.com/tunegit/tunegit@(v[0-9.]+)", text))
    assert pins == {version.tag()}
    assert "pip install -e ." not in text and "pip install ." not in text
    commands = guide_commands()
    for step in ("tunegit init lab", f"tunegit new {EXP}", f"tunegit check --write "
                 f"experiments/{EXP}", "tunegit diff origin/main HEAD", "reconcile --once"):
        assert step in commands, step


def test_a_lab_s_first_hour(tmp_path: Path, installed: Path, env: dict[str, str]) -> None:
    tunegit = installed / "tunegit"
    assert run(tmp_path, env, tunegit, "--version").stdout == f"tunegit {version.version()}\n"
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(origin))

    # Step 2: init, the first commit, and the hooks of this repository on what init wrote.
    out = run(tmp_path, env, tunegit, "init", "lab").stdout
    assert "8 create under" in out and "a new git repository on branch main" in out
    lab = tmp_path / "lab"
    git(lab, "add", "-A")
    git(lab, "commit", "-q", "-m", "tunegit init")
    git(lab, "remote", "add", "origin", str(origin))
    git(lab, "push", "-q", "-u", "origin", "main")
    assert passed(try_repo(lab, env), "tunegit check (every experiment, after a site change)")

    # Step 3: a plan for two model families, checked and committed on a branch.
    git(lab, "checkout", "-q", "-b", "plan-first")
    run(lab, env, tunegit, "new", EXP)
    plan = lab / "experiments" / EXP / "experiment.yaml"
    text = plan.read_text()
    assert f"  - {MODELS[0]}\n" in text
    plan.write_text(text.replace(f"  - {MODELS[0]}\n", "".join(f"  - {m}\n" for m in MODELS)))
    out = run(lab, env, tunegit, "check", "--write", f"experiments/{EXP}").stdout
    assert f"experiments/{EXP}/experiment.yaml: ok: 6 runs, 6 evaluations" in out
    git(lab, "add", "-A")
    git(lab, "commit", "-q", "-m", "Plan cap_5L_two_families")
    hooks = try_repo(lab, env)
    assert passed(hooks, "tunegit check (validate, estimate, runs_plan.md up to date)"), hooks
    assert passed(hooks, "tunegit guard-status (runs_status.yaml is written by tunegit only)")
    assert run(lab, env, tunegit, "check", "-q").returncode == 0

    # Step 4: the pull request's plan diff.
    git(lab, "fetch", "-q", "origin")
    diff = run(lab, env, tunegit, "diff", "origin/main", "HEAD").stdout
    assert f"| `{EXP}` | added | +6 | +6 |" in diff
    runs = {f"{m.split('/')[1]}_{suffix}" for m in MODELS for suffix in ("rank4", "rank64",
                                                                         "base")}
    assert all(f"`{name}`" in diff for name in runs)
    git(lab, "checkout", "-q", "main")
    git(lab, "merge", "-q", "--no-ff", "-m", "Merge plan-first", "plan-first")
    git(lab, "push", "-q", "origin", "main")

    # Step 5: the watcher's clone reconciles. The lab installed tunegit without the train
    # extra and has no models yet: the preflight submits nothing, and every step is blocked
    # with the fix, in one status commit on origin.
    watcher = tmp_path / "watcher"
    git(tmp_path, "clone", "-q", str(origin), str(watcher))
    git(watcher, "config", "user.name", "tunegit watcher")
    git(watcher, "config", "user.email", "watcher@example.com")
    run(watcher, env, tunegit, "reconcile", "--once")
    first = git(origin, "log", "-1", "--format=%s", "main").strip()
    assert re.fullmatch(rf"status\({EXP}\): \d+ blocked", first), first
    status = origin_status(origin)
    assert set(status["runs"]) == runs
    blocked = [step for _, _, step in steps_of(status) if step["status"] == "blocked"]
    assert blocked and any("tiny-model" in step["message"] or "models" in step["message"]
                           for step in blocked), yaml.safe_dump(status)
    run(watcher, env, tunegit, "reconcile", "--once")
    assert git(origin, "log", "-1", "--format=%s", "main").strip() == first  # once, not per cycle

    # Step 6: the models arrive on the cluster and the site says how jobs find their tools
    # (a pull request: a site change re-renders every plan). The jobs now run and fail for
    # real: this venv has no `tune`.
    for model in MODELS:
        weightless_model(watcher, model.split("/")[1])
    git(lab, "pull", "-q", "--ff-only")
    site = lab / "sites" / "local.yaml"
    site.write_text(site.read_text() + "environment: {activate: 'true'}\n")
    assert run(lab, env, tunegit, "check", "--write", "-q").returncode == 0
    git(lab, "add", "-A")
    git(lab, "commit", "-q", "-m", "Site: the jobs' environment")
    git(lab, "push", "-q", "origin", "main")
    status = until_terminal(watcher, env, tunegit, origin)
    failed = [(name, key, step) for name, key, step in steps_of(status)
              if step["status"] == "failed"]
    assert failed and all(step.get("message") for _, _, step in failed), yaml.safe_dump(status)
    own = GitStore(watcher)
    status_commits = git(origin, "log", "--format=%H", f"--grep=^status({EXP})", "main").split()
    assert len(status_commits) >= 2 and all(own.is_own(sha) for sha in status_commits)

    # Step 7: the laptop pulls; status and history tell what happened.
    git(lab, "pull", "-q", "--ff-only")
    table = run(lab, env, tunegit, "status", EXP).stdout
    assert all(name in table for name in runs) and "failed" in table
    history = run(lab, env, tunegit, "history", EXP).stdout
    assert "Qwen2.5-0.5B-Instruct_rank4: planned (Plan cap_5L_two_families)" in history, history
    assert "Qwen2.5-0.5B-Instruct_rank4: finetune: pending -> submitted" in history, history

    # Step 8: a new attempt, asked for in a pull request and merged by a reviewer.
    name = next(n for n, key, _ in failed if key == "finetune")
    git(lab, "checkout", "-q", "-b", "retry-first")
    out = run(lab, env, tunegit, "retry", EXP, name, "--reason", "the train extra is installed")
    assert "commit it and open a pull request" in out.stdout, out.stdout
    assert run(lab, env, tunegit, "check", "-q").returncode == 0
    git(lab, "add", "-A")
    git(lab, "commit", "-q", "-m", f"Retry {name}")
    git(lab, "checkout", "-q", "main")
    git(lab, "merge", "-q", "--no-ff", "-m", "Merge retry-first", "retry-first",
        env={"GIT_AUTHOR_NAME": "Rita Reviewer", "GIT_AUTHOR_EMAIL": "rita@example.com"})
    git(lab, "push", "-q", "origin", "main")
    run(watcher, env, tunegit, "reconcile", "--once")
    step = origin_status(origin)["runs"][name]["finetune"]
    assert step["attempt"] == 2 and step["attempts"], step  # attempt 1 kept in attempts
    assert "Rita Reviewer" in step["requested"]["by"], step
    git(lab, "pull", "-q", "--ff-only")
    history = run(lab, env, tunegit, "history", f"{EXP}/{name}").stdout
    assert "retry requested by Rita Reviewer" in history, history


def origin_status(origin: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(git(origin, "show", f"main:experiments/{EXP}/runs_status.yaml"))


def steps_of(status: dict) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
    return [(name, key, step) for name, r in status["runs"].items()
            for key, step in [("finetune", r["finetune"]), *r["evaluations"].items()]]


def until_terminal(watcher: Path, env: dict[str, str], tunegit: Path,
                   origin: Path) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 240
    while True:  # each job fails within seconds
        run(watcher, env, tunegit, "reconcile", "--once")
        status = origin_status(origin)
        if all(step["status"] in TERMINAL_STATES for _, _, step in steps_of(status)):
            return status
        assert time.monotonic() < deadline, yaml.safe_dump(status)
        time.sleep(2)
