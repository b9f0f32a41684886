"""The plan diff: pure comparison and formatting, then `tunegit diff` between real revisions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gitfixtures import commit_all, tunegit
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan, weightless_model
from tunegit.core import status as status_mod
from tunegit.core.expand import Run
from tunegit.core.status import Step
from tunegit.edges.plandiff import (
    MARKER,
    Cost,
    Snapshot,
    diff_experiment,
    diff_snapshots,
    duration,
    immutability_problems,
    markdown,
    plan_diff,
    submitted_runs,
)
from tunegit.edges.workspace import Workspace
from tunegit.spec.plan import RunTraining

pytestmark = pytest.mark.usefixtures("git_env")

RUN = Run(name="r4", model="tiny-llama", model_id="tunegit/tiny-llama", dataset="d.json",
          is_control=False, factors=(("lora_rank", 4),), training=RunTraining(
              epochs=1, learning_rate=0.01, batch_size=4, lora_rank=4, lora_dropout=0.0,
              weight_decay=0.01, packed=False, max_seq_len=256, validation=False, gpus=1,
              gradient_accumulation_steps=1, system_prompt="", seed=0, max_steps_per_epoch=None))


def trained(run: Run, **training: Any) -> Run:
    """``run`` with some of its training settings changed."""
    return dataclasses.replace(run, training=run.training.model_copy(update=training))


COST = Cost(1.0, 60.0, 2.0)


def snap(runs: dict[str, Run], cost: Cost = COST, submitted: dict[str, str] | None = None,
         source: str = "v1") -> Snapshot:
    evals = frozenset(f"{r}/cap_epoch_0" for r in runs)
    return Snapshot("exp", "experiments/exp/experiment.yaml", runs, evals, cost,
                    submitted or {}, source)


# --- pure ---------------------------------------------------------------------------------------

def test_same_source_is_no_diff_and_formats_to_nothing() -> None:
    same = snap({"r4": RUN})
    assert diff_experiment(same, same) is None
    assert markdown(dataclasses.replace(plan_diff_stub(), experiments=())) == ""


def test_added_removed_and_changed_runs_with_fields_and_cost() -> None:
    r8 = dataclasses.replace(trained(RUN, lora_rank=8), name="r8", factors=(("lora_rank", 8),))
    r4_new = trained(RUN, learning_rate=0.001)
    base = snap({"r4": RUN, "old": dataclasses.replace(RUN, name="old")})
    head = snap({"r4": r4_new, "r8": r8}, Cost(2.5, 150.0, 5.0), source="v2")
    d = diff_experiment(base, head)
    assert d is not None and d.kind == "changed"
    assert d.runs_added == ("r8",) and d.runs_removed == ("old",)
    assert [(c.run, [(f.field, f.old, f.new) for f in c.changes]) for c in d.runs_changed] == [
        ("r4", [("learning_rate", 0.01, 0.001)])]
    assert d.evaluations_added == ("r8/cap_epoch_0",)
    assert d.evaluations_removed == ("old/cap_epoch_0",)
    assert d.delta == Cost(1.5, 90.0, 3.0)
    assert d.violations == ()


def test_a_change_to_a_submitted_run_is_a_violation() -> None:
    base = snap({"r4": RUN}, submitted={"r4": "finetune: completed job local-3"})
    head = snap({"r4": trained(RUN, epochs=2)}, source="v2")
    d = diff_experiment(base, head)
    assert d is not None
    assert [c.submitted for c in d.violations] == ["finetune: completed job local-3"]


def test_submitted_runs_skip_pending_and_skipped() -> None:
    status = status_mod.StatusFile("exp", {
        "a": status_mod.RunStatus(Step(), {"k": Step()}),
        "b": status_mod.RunStatus(Step("skipped"), {"k": Step("running", job_id="9")}),
        "c": status_mod.RunStatus(Step("completed", job_id="7"), {}),
    })
    assert submitted_runs(status) == {"b": "k: running job 9", "c": "finetune: completed job 7"}


def test_markdown_has_marker_table_and_sections() -> None:
    added = snap({"r4": RUN}, Cost(3.12, 65.0, 11.1))
    diffs = diff_snapshots({}, {"exp": added})
    text = markdown(dataclasses.replace(plan_diff_stub(), experiments=diffs))
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert "1 experiment changed, **+3.12 GPU-h**, +1h 05m sequential, +11.1 GiB disk" in text
    assert "| `exp` | added | +1 | +1 | +3.12 | +1h 05m | +11.1 GiB |" in lines
    assert "- runs added: `r4`" in lines


def test_duration() -> None:
    assert [duration(m) for m in (0, 5.4, 60, 125, -90)] == ["0m", "5m", "1h 00m", "2h 05m",
                                                             "-1h 30m"]


def plan_diff_stub():  # type: ignore[no-untyped-def]
    from tunegit.edges.plandiff import PlanDiff

    return PlanDiff("a" * 40, "b" * 40, ())


# --- real revisions -----------------------------------------------------------------------------

def planned_repo(tmp_path: Path) -> Path:
    """A git repository whose one commit holds plan exp1 (rank 8) and its rendered files."""
    import subprocess

    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, gitignore=GITIGNORE)
    weightless_model(repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write_plan(repo, "exp1", (8,))
    commit_all(repo, "Plan exp1")
    return repo


def write_plan(repo: Path, name: str, ranks: tuple[int, ...], lr: float = 1.0e-2) -> None:
    path = repo / "experiments" / name / "experiment.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tiny_plan(name, factors={"lora_rank": list(ranks)},
                              training={"learning_rate": lr}))
    assert tunegit(["-C", str(repo), "check", "--write", "-q", f"experiments/{name}"]) == 0


def test_diff_between_revisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    write_plan(repo, "exp1", (8, 32), lr=5.0e-3)
    write_plan(repo, "exp2", (4,))
    commit_all(repo, "Second rank, new lr, exp2")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(MARKER + "\n")
    assert "| `exp1` | changed | +1 ~1 | +1 |" in out
    assert "| `exp2` | added | +1 | +1 |" in out
    assert "- run `tiny-llama_rank8` changed: `learning_rate` 0.01 → 0.005" in out
    assert "- runs added: `tiny-llama_rank32`" in out

    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in data["experiments"]] == ["exp1", "exp2"]
    assert data["delta"]["gpu_hours"] > 0


def test_no_plan_change_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    (repo / "README.md").write_text("docs only\n")
    commit_all(repo, "Docs")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 0
    assert capsys.readouterr().out == ""


def test_changing_a_submitted_run_is_refused_by_diff_and_check_base(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    status_path = repo / "experiments/exp1/runs_status.yaml"
    status = status_mod.parse(status_path.read_text())
    step = Step("completed", job_id="local-7", last_updated="2025-10-22T10:00:00Z")
    status_path.write_text(status_mod.dump(status.with_step("tiny-llama_rank8", None, step)))
    commit_all(repo, "status(exp1): 1 completed\n\nTunegit-Experiment: exp1")
    write_plan(repo, "exp1", (8,), lr=5.0e-3)

    problems = immutability_problems(Workspace(repo), "HEAD")
    assert [p.format() for p in problems] == [
        "experiments/exp1/experiment.yaml:14:18: training.learning_rate: run 'tiny-llama_rank8' "
        "was already submitted (finetune: completed job local-7); submitted runs are immutable,"
        " but learning_rate (0.01 -> 0.005) changed\n"
        "  hint: give the changed run a new name (edit `run_name` or a factor level) so it runs"
        " again as a new run, or revert the change"]

    commit_all(repo, "Change lr of a finished run")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 1
    captured = capsys.readouterr()
    assert "refused: already submitted (finetune: completed job local-7)" in captured.out
    assert "experiments/exp1/experiment.yaml:14:18: training.learning_rate" in captured.out


def test_unknown_revision_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    assert tunegit(["-C", str(repo), "diff", "no-such-rev"]) == 1
    assert "fetch-depth: 0" in capsys.readouterr().err
    assert plan_diff(repo, "HEAD").empty  # the working tree equals HEAD


# --- what a reviewer reads (issue 16, item 5) ---------------------------------------------------

def submit_all(repo: Path, name: str) -> None:
    """Record every step of ``name`` as completed, committed as the watcher would."""
    path = repo / f"experiments/{name}/runs_status.yaml"
    status = status_mod.parse(path.read_text())
    for n, (run, key, step) in enumerate(status.steps()):
        if step.status == "pending":
            status = status.with_step(run, key, Step("completed", job_id=f"local-{n}",
                                                     last_updated="2025-10-22T10:00:00Z"))
    path.write_text(status_mod.dump(status))
    commit_all(repo, f"status({name}): completed\n\nTunegit-Experiment: {name}")


def write_controlled_plan(repo: Path, ranks: tuple[int, ...], lr: float) -> None:
    path = repo / "experiments/exp1/experiment.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tiny_plan("exp1", controls=True, factors={"lora_rank": list(ranks)},
                              training={"learning_rate": lr}))
    assert tunegit(["-C", str(repo), "check", "--write", "-q", "experiments/exp1"]) == 0


def controlled_repo(tmp_path: Path) -> Path:
    """exp1 with ranks 8 and 16 plus a control, every step already run."""
    import subprocess

    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, gitignore=GITIGNORE)
    weightless_model(repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write_controlled_plan(repo, (8, 16), 1.0e-2)
    commit_all(repo, "Plan exp1")
    submit_all(repo, "exp1")
    return repo


def test_a_new_factor_level_is_shown_as_such_and_the_control_is_not_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = controlled_repo(tmp_path)
    write_controlled_plan(repo, (8, 16, 32), 1.0e-2)
    commit_all(repo, "Rank 32 too")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("### `exp1`"):].splitlines()
    assert section[2] == "- factor `lora_rank`: [8, 16] → [8, 16, 32]"
    assert section[3] == "- runs added: `tiny-llama_rank32`"
    assert "tiny-llama_base" not in out and "refused" not in out.lower()


def learning_rate_diff(tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> pytest.CaptureResult[str]:
    """`tunegit diff` of a commit that changes the learning rate of a plan with a control,
    whose trained runs were submitted (it refuses them: exit 1); what it printed."""
    repo = controlled_repo(tmp_path)
    write_controlled_plan(repo, (8, 16), 5.0e-3)
    commit_all(repo, "New learning rate")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 1
    return capsys.readouterr()


def test_a_learning_rate_change_refuses_trained_runs_but_never_the_control(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captured = learning_rate_diff(tmp_path, capsys)
    section = captured.out[captured.out.index("### `exp1`"):].splitlines()
    assert section[2] == "- setting `training.learning_rate`: 0.01 → 0.005"
    assert [line.split(" changed:")[0] for line in section if " changed:" in line] == [
        "- run `tiny-llama_rank8`", "- run `tiny-llama_rank16`"]
    assert "tiny-llama_base" not in captured.out + captured.err


def test_a_system_prompt_change_does_flag_the_control(tmp_path: Path) -> None:
    """The control's evaluation reads the system prompt: changing it is a change to it."""
    repo = controlled_repo(tmp_path)
    plan = repo / "experiments/exp1/experiment.yaml"
    plan.write_text(plan.read_text().replace('system_prompt: ""', 'system_prompt: "Be brief."'))
    diff = plan_diff(repo, "HEAD")
    changed = {c.run: [f.field for f in c.changes] for c in diff.experiments[0].runs_changed}
    assert changed["tiny-llama_base"] == ["system_prompt"]


def test_preliminary_estimates_are_marked_in_the_diff(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    write_plan(repo, "exp2", (4,))
    commit_all(repo, "exp2")
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "diff", "HEAD~1", "HEAD"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `exp2`"))
    assert "(preliminary) |" in row
    cost = next(line for line in out.splitlines() if line.startswith("- cost:"))
    assert cost.endswith("(**preliminary**: no completed runs or calibration like these yet, "
                         "the figures come from the fallback table)")


def test_estimates_from_history_are_not_marked_preliminary() -> None:
    head = dataclasses.replace(snap({"r4": RUN}, source="v2"), preliminary=False)
    d = diff_experiment(snap({}), head)
    text = markdown(dataclasses.replace(plan_diff_stub(), experiments=(d,)))
    assert d is not None and "preliminary" not in text


def test_check_base_prints_each_error_once_and_no_ok_for_the_refused_plan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = controlled_repo(tmp_path)
    write_controlled_plan(repo, (8, 16), 5.0e-3)
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "check", "--base", "HEAD", "experiments/exp1"]) == 1
    captured = capsys.readouterr()
    assert "ok" not in captured.out
    errors = [line for line in captured.err.splitlines() if "experiment.yaml:" in line]
    assert len(errors) == len(set(errors)) == 2  # one per trained run, each once
    assert captured.err.splitlines()[-1] == "1 of 1 experiment(s) failed the check"


def test_diff_lists_each_refusal_once_between_stdout_and_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captured = learning_rate_diff(tmp_path, capsys)
    both = (captured.out + captured.err).splitlines()
    located = [line for line in both if line.startswith("experiments/exp1/experiment.yaml:")]
    assert len(located) == len(set(located)) == 2
    assert captured.err.strip() == ("tunegit diff: 2 change(s) to submitted runs refused "
                                    "(listed in the diff)")


def test_the_local_hook_checks_submitted_runs_against_the_pushed_status(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gitfixtures import clone, git

    watcher = clone(origin, tmp_path / "watcher")
    weightless_model(watcher)
    write_controlled_plan(watcher, (8, 16), 1.0e-2)
    commit_all(watcher, "Plan exp1")
    submit_all(watcher, "exp1")
    git(watcher, "push", "-q", "origin", "HEAD:main")
    mine = clone(origin, tmp_path / "mine")
    weightless_model(mine)
    capsys.readouterr()
    assert tunegit(["-C", str(mine), "check", "experiments/exp1"]) == 0
    assert "ok" in capsys.readouterr().out

    plan = mine / "experiments/exp1/experiment.yaml"  # no --base: origin/main is the base
    plan.write_text(plan.read_text().replace("learning_rate: 1.0e-2", "learning_rate: 5.0e-3"))
    capsys.readouterr()
    assert tunegit(["-C", str(mine), "check", "--quiet", "experiments/exp1"]) == 1
    err = capsys.readouterr().err
    assert "run 'tiny-llama_rank8' was already submitted (finetune: completed job" in err


def test_without_an_upstream_the_check_says_what_it_did_not_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "check", "--quiet", "experiments/exp1"]) == 0
    assert capsys.readouterr().out == ""  # nothing submitted yet: nothing to protect
    assert tunegit(["-C", str(repo), "run", "exp1", "--no-wait"]) == 0  # a job id recorded
    capsys.readouterr()
    assert tunegit(["-C", str(repo), "check", "--quiet", "experiments/exp1"]) == 0
    assert capsys.readouterr().out == (
        "note: this branch has no upstream, so changes to submitted runs are checked in CI "
        "only (`git branch --set-upstream-to origin/main` checks them here)\n")
