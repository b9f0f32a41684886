"""The plan diff: pure comparison and formatting, then `tunegit diff` between real revisions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gitfixtures import commit_all, tunegit
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan
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
    assert "experiments/exp1/experiment.yaml:14:18: training.learning_rate" in captured.err


def test_unknown_revision_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = planned_repo(tmp_path)
    assert tunegit(["-C", str(repo), "diff", "no-such-rev"]) == 1
    assert "fetch-depth: 0" in capsys.readouterr().err
    assert plan_diff(repo, "HEAD").empty  # the working tree equals HEAD
