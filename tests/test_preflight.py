"""Preflight and blocked steps: a step whose job cannot run is `blocked` with the fix,
nothing is submitted for it, and it proceeds by itself once the cause is gone; a plan the
watcher cannot run is blocked with its reason, committed once.

All on real git repositories and the real local executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gitfixtures import clone, commit_all, git, tunegit
from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan, weightless_model
from tunegit.core import states
from tunegit.edges.analysis import analyse
from tunegit.edges.preflight import preflight, program_problem
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace

RUN = "tiny-llama_rank8"
EVAL = "capitalization_epoch_0"


def steps_of(repo: Path, name: str) -> dict[tuple[str, str | None], dict[str, object]]:
    data = yaml.safe_load((repo / "experiments" / name / STATUS_FILE).read_text())
    out: dict[tuple[str, str | None], dict[str, object]] = {}
    for run, record in data["runs"].items():
        out[(run, None)] = record["finetune"]
        out.update({(run, key): step for key, step in record["evaluations"].items()})
    return out


def jobs_launched(repo: Path) -> list[Path]:
    jobs = repo / ".tunegit" / "outputs" / ".tunegit-jobs"
    return sorted(p for p in jobs.iterdir() if p.name != "by-name") if jobs.is_dir() else []


def test_a_missing_model_submits_nothing_names_the_fix_and_proceeds_once_it_is_there(
        git_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": tiny_plan("exp")},
                     gitignore=GITIGNORE, commit="plans")
    assert tunegit(["-C", str(repo), "run", "exp", "--poll", "1"]) == 1
    printed = capsys.readouterr().out
    missing = ("base model .tunegit/models/tiny-llama/config.json is missing: run "
               "`tunegit tiny-model --site local` for the demo's tiny models, or download "
               "tiny-llama into that directory")
    assert f"{RUN} fine-tuning: pending -> blocked: Preflight: {missing}" in printed
    assert f"{RUN} / fine-tuning: blocked: Preflight: {missing}" in printed  # the summary
    steps = steps_of(repo, "exp")
    assert {k: (s["status"], s["reason"], s["message"]) for k, s in steps.items()} == {
        (RUN, None): ("blocked", "Preflight", missing),
        (RUN, EVAL): ("blocked", "Preflight", missing)}
    assert jobs_launched(repo) == []  # nothing was submitted

    weightless_model(repo)  # fixed: the next cycle proceeds by itself, no `tunegit retry`
    assert tunegit(["-C", str(repo), "run", "exp", "--no-wait"]) == 0
    printed = capsys.readouterr().out
    assert f"{RUN} fine-tuning: blocked -> pending" in printed
    assert f"{RUN} fine-tuning: pending -> submitted" in printed
    assert steps_of(repo, "exp")[(RUN, None)]["status"] in (states.SUBMITTED, states.RUNNING)
    assert len(jobs_launched(repo)) == 1


def test_a_task_script_not_tracked_in_git_holds_its_evaluations_only(
        git_env: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": tiny_plan("exp")},
                     gitignore=GITIGNORE, commit="plans")
    git(repo, "rm", "-q", "--cached", "tasks/capitalization/eval.py")
    git(repo, "commit", "-q", "-m", "untrack the task")
    weightless_model(repo)
    ws = Workspace(repo)
    a = analyse(ws, ws.experiment_dir("exp") / PLAN_FILE)
    held = preflight(ws, a.site, a.expansion, [(RUN, None), (RUN, EVAL)])
    assert held == {(RUN, EVAL): "task script tasks/capitalization/eval.py is not tracked in "
                    "git: `git add tasks/capitalization/eval.py` and commit it"}
    commit_all(repo, "track it again")
    assert preflight(ws, a.site, a.expansion, [(RUN, None), (RUN, EVAL)]) == {}


def test_a_dataset_without_the_split_the_plan_needs_blocks_the_plan(
        git_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {"tasks/capitalization/input/train_only.json":
            json.dumps({"train": [{"input": "abc", "output": "ABC"}] * 8})}
    plan = tiny_plan("exp", dataset={"path": "tasks/capitalization/input/train_only.json"})
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": plan},
                     texts=data, gitignore=GITIGNORE, commit="plans")
    weightless_model(repo)
    assert tunegit(["-C", str(repo), "run", "exp", "--poll", "1"]) == 1
    captured = capsys.readouterr()
    assert "dataset tasks/capitalization/input/train_only.json lacks the split(s) test" \
        in captured.err
    steps = steps_of(repo, "exp")
    assert {(s["status"], s["reason"]) for s in steps.values()} == {("blocked", "CannotRun")}
    message = str(steps[(RUN, None)]["message"])
    assert message.startswith("cannot run: ")
    assert "lacks the split(s) test" in message and "\n" not in message
    assert jobs_launched(repo) == []


def test_a_plan_for_an_unknown_site_is_blocked_with_its_reason_committed_once(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    laptop = clone(origin, tmp_path / "laptop", name="Alice Planner")
    watcher = clone(origin, tmp_path / "cluster", name="tunegit watcher")
    plan = laptop / "experiments/far/experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("far"))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q", "experiments/far"]) == 0
    plan.write_text(tiny_plan("far", site="nowhere"))  # merged without its site file
    commit_all(laptop, "Plan far", author="Alice Planner")
    git(laptop, "push", "-q", "origin", "main")

    for _ in range(2):
        assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
        assert "no site file sites/nowhere.yaml" in capsys.readouterr().err
    steps = steps_of(watcher, "far")
    assert {(s["status"], s["reason"]) for s in steps.values()} == {("blocked", "CannotRun")}
    assert "no site file sites/nowhere.yaml" in str(steps[(RUN, None)]["message"])
    log = git(origin, "log", "--format=%s", "main", "--", f"experiments/far/{STATUS_FILE}")
    assert len(log.splitlines()) == 2, log  # the plan's commit and one status commit
    assert tunegit(["-C", str(watcher), "status", "far"]) == 0
    assert "no site file sites/nowhere.yaml" in capsys.readouterr().out


def test_a_watcher_serves_only_its_sites_and_says_which_plans_it_left_alone(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    laptop = clone(origin, tmp_path / "laptop", name="Alice Planner")
    watcher = clone(origin, tmp_path / "cluster", name="tunegit watcher")
    for name, site in (("here", "local"), ("far", "nowhere")):
        plan = laptop / f"experiments/{name}/experiment.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(tiny_plan(name))
        assert tunegit(["-C", str(laptop), "check", "--write", "-q", f"experiments/{name}"]) == 0
        plan.write_text(tiny_plan(name, site=site))
    commit_all(laptop, "Plans here and far", author="Alice Planner")
    git(laptop, "push", "-q", "origin", "main")
    weightless_model(watcher)
    status_far = (watcher / "experiments/far" / STATUS_FILE)
    capsys.readouterr()  # the laptop's checks (no model there)

    assert tunegit(["-C", str(watcher), "reconcile", "--once", "--site", "local"]) == 0
    captured = capsys.readouterr()
    assert "1 experiment(s)" in captured.out
    assert "skipped (another site): far (nowhere)" in captured.out
    assert captured.err == ""
    assert steps_of(watcher, "here")[(RUN, None)]["status"] in (states.SUBMITTED,
                                                               states.RUNNING)
    far_before = git(origin, "show", f"main:experiments/far/{STATUS_FILE}")
    assert "blocked" not in status_far.read_text() and "blocked" not in far_before
    tunegit(["-C", str(watcher), "cancel", "here"])


def test_a_program_the_jobs_cannot_find_names_the_train_extra_unless_the_site_sets_up_its_own(
        git_env: Path, tmp_path: Path) -> None:
    """`tune` and `inspect` are there in this test environment; a name that is on no PATH
    stands for them missing (the lookup is the real one, on the jobs' PATH)."""
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, gitignore=GITIGNORE)
    site = Workspace(repo).load_site("local")
    assert program_problem(site, "tune") is None
    assert program_problem(site, "tune-not-installed") == (
        "`tune-not-installed` is not installed for the jobs' Python: pip install "
        "'tunegit[train]' into the environment tunegit runs from")
    own = site.model_copy(update={"environment": site.environment.model_copy(
        update={"activate": "conda activate ttenv"})})
    assert program_problem(own, "tune-not-installed") is None  # set up on the job host


def test_a_site_variable_unset_where_tunegit_submits_blocks_with_its_name(
        git_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEGIT_TEST_SCRATCH", raising=False)
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"exp": tiny_plan("exp")},
                     gitignore=GITIGNORE, commit="plans")
    site = repo / "sites/local.yaml"
    site.write_text(site.read_text().replace("models_dir: .tunegit/models",
                                             "models_dir: $TUNEGIT_TEST_SCRATCH/models"))
    commit_all(repo, "models on scratch")
    assert tunegit(["-C", str(repo), "run", "exp", "--poll", "1"]) == 1
    unset = ("sites/local.yaml: models_dir uses $TUNEGIT_TEST_SCRATCH, not set where tunegit "
             "submits: set it in the environment tunegit runs in, or write the path out")
    assert f"{RUN} / fine-tuning: blocked: Preflight: {unset}" in capsys.readouterr().out
    assert {s["message"] for s in steps_of(repo, "exp").values()} == {unset}
    assert jobs_launched(repo) == []

    monkeypatch.setenv("TUNEGIT_TEST_SCRATCH", str(tmp_path / "scratch"))
    weightless_model(tmp_path / "scratch", models_dir="models")
    assert tunegit(["-C", str(repo), "run", "exp", "--no-wait"]) == 0
    assert f"{RUN} fine-tuning: pending -> submitted" in capsys.readouterr().out
