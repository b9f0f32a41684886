"""A committed runs_plan.md is stale only when its plan or its site file changed.

Estimates learn from completed runs anywhere in the repository, so runs completing in one
experiment move the figures of every other plan's runs_plan.md. A hook that failed on that
("stale" for a plan nobody touched) would be turned off: `check` passes and says what would
change; `check --write` refreshes the figures when the author chooses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from planfixtures import make_repo, run_cli, tiny_plan, weightless_model

HISTORY = Path(__file__).parent / "fixtures" / "history" / "demo_capitalization"
FIX = "  hint: run `tunegit check --write experiments/new` and commit the result\n"

pytestmark = pytest.mark.usefixtures("git_env")


@pytest.fixture
def rendered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = make_repo(tmp_path / "repo", plans={"new": tiny_plan("new")})
    weightless_model(root)
    code, _, err = run_cli(capsys, root, "check", "--write", "-q", "experiments/new")
    assert code == 0, err
    return root


def test_completed_runs_elsewhere_move_figures_without_failing_the_check(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (rendered / "experiments/new/runs_plan.md").read_text()
    shutil.copytree(HISTORY, rendered / "experiments/demo_capitalization")  # 2 completed fine-tunes
    code, out, err = run_cli(capsys, rendered, "check", "experiments/new")
    assert code == 0, err
    assert ("note: experiments/new/runs_plan.md: estimates would change with 2 new completed "
            "run(s); `tunegit check --write experiments/new` refreshes them when you choose\n"
            ) in out
    assert (rendered / "experiments/new/runs_plan.md").read_text() == before  # untouched
    code, out, _ = run_cli(capsys, rendered, "check", "--write", "experiments/new")
    assert code == 0 and "wrote experiments/new/runs_plan.md" in out
    assert (rendered / "experiments/new/runs_plan.md").read_text() != before
    code, out, _ = run_cli(capsys, rendered, "check", "experiments/new")
    assert code == 0 and "note:" not in out


def test_a_site_change_makes_it_stale(rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = rendered / "sites/local.yaml"
    site.write_text(site.read_text().replace("max_parallel: 2", "max_parallel: 3"))
    code, _, err = run_cli(capsys, rendered, "check", "experiments/new")
    assert code == 1
    assert err.startswith("experiments/new/runs_plan.md: is stale (sites/local.yaml changed "
                          "since it was rendered)\n" + FIX)


def test_a_plan_change_makes_it_stale(rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = rendered / "experiments/new/experiment.yaml"
    plan.write_text(tiny_plan("new", question="Does the loop work twice?"))
    code, _, err = run_cli(capsys, rendered, "check", "experiments/new")
    assert code == 1
    assert err.startswith("experiments/new/runs_plan.md: is stale (the plan changed since it "
                          "was rendered)\n" + FIX)
