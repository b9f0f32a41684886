"""`tunegit init`: a lab's own repository, pinned at this version, written idempotently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from planfixtures import run_cli
from tunegit import version
from tunegit.commands.init import EXAMPLE_DATASET
from tunegit.render.labrepo import HOOKS, REUSABLE_WORKFLOW, TEMPLATES

REPO = Path(__file__).resolve().parents[1]
FILES = sorted([*TEMPLATES, EXAMPLE_DATASET])


def init(capsys: pytest.CaptureFixture[str], lab: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    return run_cli(capsys, lab.parent, "init", str(lab), *args)


@pytest.fixture
def lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    lab = tmp_path / "lab"
    code, _, err = init(capsys, lab)
    assert code == 0, err
    return lab


def test_init_writes_a_git_repository_with_every_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    code, out, _ = init(capsys, lab)
    assert code == 0
    lines = out.splitlines()
    assert lines[:len(FILES)] == [f"   create  {path}" for path in FILES]
    assert lines[len(FILES)] == (f"{len(FILES)} create under {lab} (tunegit {version.tag()}); "
                                 "a new git repository on branch main")
    assert all((lab / path).is_file() for path in FILES)
    branch = subprocess.run(["git", "-C", str(lab), "symbolic-ref", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout
    assert branch == "main\n"
    assert (lab / ".gitignore").read_text().splitlines()[1] == ".tunegit/"


def test_a_rerun_reports_every_file_identical(lab: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = init(capsys, lab)
    assert code == 0
    assert out.splitlines()[:len(FILES)] == [f"identical  {path}" for path in FILES]
    assert f"{len(FILES)} identical under {lab}" in out


def test_a_file_changed_by_hand_is_a_conflict_left_alone_unless_forced(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = lab / "sites" / "local.yaml"
    edited = site.read_text() + "max_parallel: 4\n"
    site.write_text(edited)
    code, out, _ = init(capsys, lab)
    assert code == 1
    assert " conflict  sites/local.yaml  (edited by hand)" in out.splitlines()
    assert f"1 conflict, {len(FILES) - 1} identical under {lab}" in out
    assert "rerun with --force to overwrite" in out
    assert site.read_text() == edited

    code, out, _ = init(capsys, lab, "--dry-run")
    assert code == 1 and "dry run: 1 conflict" in out and site.read_text() == edited
    code, out, _ = init(capsys, lab, "--force")
    assert code == 0 and "   update  sites/local.yaml" in out.splitlines()
    assert site.read_text() != edited


def test_a_file_init_did_not_write_is_never_overwritten(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    (lab / "sites").mkdir(parents=True)
    (lab / "README.md").write_text("# Our lab\n")
    code, out, _ = init(capsys, lab)
    assert code == 1
    assert " conflict  README.md  (not written by tunegit)" in out.splitlines()
    assert (lab / "README.md").read_text() == "# Our lab\n"
    assert (lab / "sites" / "local.yaml").is_file()  # the rest is written


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    code, out, _ = init(capsys, lab, "--dry-run")
    assert code == 0
    assert f"dry run: {len(FILES)} create; nothing written under {lab}" in out
    assert not lab.exists()


def test_hooks_and_ci_pin_this_version_s_tag(lab: Path) -> None:
    config = yaml.safe_load((lab / ".pre-commit-config.yaml").read_text())
    assert config["repos"] == [{"repo": version.DEFAULT_URL, "rev": version.tag(),
                                "hooks": [{"id": hook} for hook in HOOKS]}]
    published = [h["id"] for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())]
    assert list(HOOKS) == published
    workflow = yaml.safe_load((lab / ".github/workflows/plan.yml").read_text())
    job = workflow["jobs"]["plan"]
    assert job["uses"] == f"tunegit/tunegit/{REUSABLE_WORKFLOW}@{version.tag()}"
    assert (REPO / REUSABLE_WORKFLOW).is_file()
    assert job["with"] == {"tunegit-url": version.DEFAULT_URL}
    readme = (lab / "README.md").read_text()
    assert f"pip install 'tunegit @ git+{version.DEFAULT_URL}@{version.tag()}'" in readme
    assert "pip install ." not in readme and "pip install -e" not in readme


def test_tunegit_url_names_a_fork_everywhere(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    code, _, err = init(capsys, lab, "--tunegit-url", "git@github.com:our-lab/tunegit.git")
    assert code == 0, err
    config = yaml.safe_load((lab / ".pre-commit-config.yaml").read_text())
    assert config["repos"][0]["repo"] == "https://github.com/our-lab/tunegit"
    job = yaml.safe_load((lab / ".github/workflows/plan.yml").read_text())["jobs"]["plan"]
    assert job["uses"].startswith("our-lab/tunegit/.github/")
    assert job["with"]["tunegit-url"] == "https://github.com/our-lab/tunegit"


def test_a_url_that_is_not_a_github_repository_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    code, _, err = init(capsys, lab, "--tunegit-url", "https://gitlab.example/tunegit")
    assert code == 1
    assert err.startswith("error: --tunegit-url 'https://gitlab.example/tunegit': not a GitHub "
                          "repository URL\nhint: give https://github.com/OWNER/NAME")
    assert not lab.exists()


def test_the_example_task_is_this_repository_s_and_its_data_is_the_dataset_command_s(
        lab: Path) -> None:
    task = "tasks/capitalization/eval.py"
    assert (lab / task).read_text() == (REPO / task).read_text()
    assert (lab / EXAMPLE_DATASET).read_text() == (REPO / EXAMPLE_DATASET).read_text()
    assert (lab / "sites/local.yaml").read_text() == (REPO / "sites/local.yaml").read_text()


def test_a_new_plan_in_the_lab_checks(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, lab, "new", "exp1")[0] == 0
    code, out, err = run_cli(capsys, lab, "check", "--write", "experiments/exp1")
    assert code == 0, err
    assert "experiments/exp1/experiment.yaml: ok: 3 runs" in out
    slurm = yaml.safe_load((lab / "sites/cluster.yaml").read_text())
    assert slurm["executor"] == "slurm"
    (lab / "experiments/exp1/experiment.yaml").write_text(
        (lab / "experiments/exp1/experiment.yaml").read_text().replace("site: local",
                                                                         "site: cluster"))
    code, _, err = run_cli(capsys, lab, "check", "--write", "experiments/exp1")
    assert code == 0, err  # the SLURM site to fill in is a valid site as it stands


def test_a_repository_without_sites_says_init_makes_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "experiments").mkdir()
    assert run_cli(capsys, tmp_path, "new", "exp1")[0] == 0
    code, _, err = run_cli(capsys, tmp_path, "check", "experiments/exp1")
    assert code == 1
    assert ("site: no site file sites/local.yaml\n  hint: no sites yet: `tunegit init` writes "
            "sites/local.yaml (this machine) and sites/cluster.yaml (a SLURM site to fill in)\n"
            ) in err


def test_pre_commit_accepts_the_lab_s_config(lab: Path) -> None:
    exe = Path(sys.executable).parent / "pre-commit"
    proc = subprocess.run([str(exe), "validate-config", ".pre-commit-config.yaml"], cwd=lab,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_relative_dir_is_under_dash_c(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, tmp_path, "init", "lab")
    assert code == 0, err
    assert (tmp_path / "lab" / "sites" / "local.yaml").is_file()
