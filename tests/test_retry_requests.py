"""Retry through a pull request: retry.yaml requests judged against the status (pure), then
written by `tunegit retry`, checked by `tunegit check`, applied once by the watcher with who
asked, on real git; end to end with an evaluation that fails for real on the local executor."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from gitfixtures import clone, commit_all, git, tunegit
from planfixtures import run_cli, tiny_plan, weightless_model
from test_failure_cause import (
    BROKEN_TASK,
    TRAIN,
    broken_task,
    plan_a_broken_evaluation,
    watch_until_done,
)
from test_reconcile import BASE, EV, EVB, EXP, LATER, NOW, R8, status
from tunegit.core import retry as retry_mod
from tunegit.core import states
from tunegit.core import status as status_mod
from tunegit.core.retry import APPLIED, DUE, REFUSED, Requester
from tunegit.core.status import Step
from tunegit.edges.workspace import STATUS_FILE
from tunegit.spec.retry import RetryRequest

FAILED_EVAL = Step(states.FAILED, job_id="9", job_name="tg:exp:tiny-llama_base:capitalization",
                   attempt=1, last_updated=NOW, reason="NonZeroExitCode")
BLOCKED_NEVER_RAN = Step(states.BLOCKED, reason=states.REASON_DEPENDENCY_FAILED)


def req(run: str = BASE, eval: str | None = EVB, attempt: int = 2,
        reason: str = "the task's bug is fixed") -> RetryRequest:
    return RetryRequest(run=run, eval=eval, attempt=attempt, reason=reason)


# --- pure: the verdict on each request ----------------------------------------------------------

@pytest.mark.parametrize(("steps", "request_", "kind", "field", "message"), [
    pytest.param({(BASE, EVB): FAILED_EVAL}, req(), DUE, "", "",
                 id="a failed step's next attempt is due"),
    pytest.param({(R8, EV): BLOCKED_NEVER_RAN}, req(R8, EV, 1), DUE, "", "",
                 id="a step that never had a job keeps its attempt number"),
    pytest.param({}, req("nope"), REFUSED, "run", "no run 'nope' in runs_status.yaml",
                 id="an unknown run"),
    pytest.param({}, req(BASE, "nope"), REFUSED, "eval",
                 "run tiny-llama_base has no evaluation 'nope'", id="an unknown evaluation"),
    pytest.param({}, req(), REFUSED, "eval", "tiny-llama_base/capitalization is pending; only a "
                 "failed, cancelled or blocked step gets a new attempt", id="a pending step"),
    pytest.param({(BASE, EVB): FAILED_EVAL}, req(attempt=3), REFUSED, "attempt",
                 "tiny-llama_base/capitalization is at attempt 1 (failed): the new attempt is 2,"
                 " not 3", id="another attempt number"),
])
def test_judge(steps: dict, request_: RetryRequest, kind: str, field: str,
               message: str) -> None:
    verdict = retry_mod.judge(status(steps), request_)
    assert (verdict.kind, verdict.field, verdict.message) == (kind, field, message)


def test_applying_records_the_request_and_it_is_never_due_again() -> None:
    before = status({(BASE, EVB): FAILED_EVAL})
    who = Requester("Alice Planner <alice@example.com>", "c" * 40)
    after, transitions = retry_mod.apply(before, EXP, req(), LATER, who)
    step = after.step(BASE, EVB)
    assert (step.status, step.attempt, step.attempts[0]["job_id"]) == (states.PENDING, 2, "9")
    assert step.requested == {"id": "tiny-llama_base/capitalization@a2",
                              "reason": "the task's bug is fixed",
                              "by": "Alice Planner <alice@example.com>", "commit": "c" * 40}
    assert [(t.old, t.new, t.message) for t in transitions] == [
        ("failed", "pending", "retry requested by Alice Planner <alice@example.com> in "
         "cccccccccc: the task's bug is fixed")]
    assert retry_mod.judge(after, req()).kind == APPLIED
    # The new attempt fails too: the old request still is applied, in the attempts record.
    failed_again = after.with_step(BASE, EVB, step.moved(
        states.FAILED, LATER, job_id="12", job_name="tg:exp:tiny-llama_base:capitalization:a2"))
    again, _ = retry_mod.apply(failed_again, EXP, req(attempt=3), LATER, None)
    assert retry_mod.judge(again, req()).kind == APPLIED
    assert retry_mod.judge(again, req(attempt=3)).kind == APPLIED
    reread = status_mod.parse(status_mod.dump(again))
    assert reread.step(BASE, EVB).attempts[1]["requested"]["by"] == who.by


# --- real files and git -------------------------------------------------------------------------

def failed_repo(origin: Path, tmp_path: Path) -> Path:
    """A clone whose pushed status (as the watcher commits it) has a failed control eval."""
    repo = clone(origin, tmp_path / "laptop", name="Alice Planner")
    weightless_model(repo)
    plan = repo / "experiments/exp1/experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("exp1", controls=True))
    assert tunegit(["-C", str(repo), "check", "--write", "-q", "experiments/exp1"]) == 0
    commit_all(repo, "Plan exp1", author="Alice Planner")
    path = repo / "experiments/exp1/runs_status.yaml"
    s = status_mod.parse(path.read_text())
    s = s.with_step("tiny-llama_base", "capitalization", FAILED_EVAL)
    s = s.with_step("tiny-llama_rank8", None, Step(states.CANCELLED, job_id="5", attempt=1,
                                                   job_name="tg:exp1:tiny-llama_rank8:ft"))
    path.write_text(status_mod.dump(s))
    commit_all(repo, "status(exp1): 1 failed\n\nTunegit-Experiment: exp1")
    git(repo, "push", "-q", "origin", "HEAD:main")
    return repo


RETRY_YAML_TAIL = """retry:
  - run: tiny-llama_base
    eval: capitalization
    attempt: 2
    reason: the task's bug is fixed
"""


@pytest.mark.usefixtures("git_env")
def test_tunegit_retry_writes_a_request_and_leaves_the_status_alone(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = failed_repo(origin, tmp_path)
    status_before = (repo / "experiments/exp1/runs_status.yaml").read_text()
    code, out, _ = run_cli(capsys, repo, "retry", "exp1", "tiny-llama_base", "capitalization",
                           "--reason", "the task's bug is fixed")
    assert code == 0
    assert out.splitlines() == [
        "experiments/exp1/retry.yaml: asks for attempt 2 of tiny-llama_base/capitalization "
        "(attempt 1 failed (NonZeroExitCode))",
        "commit it and open a pull request; once merged, the watcher starts attempt 2 (without"
        " a watcher, `tunegit run exp1` does)"]
    text = (repo / "experiments/exp1/retry.yaml").read_text()
    assert text.startswith("# New attempts of failed") and text.endswith(RETRY_YAML_TAIL)
    assert (repo / "experiments/exp1/runs_status.yaml").read_text() == status_before
    # Asking twice adds nothing; the check passes, and so does guard-status.
    assert run_cli(capsys, repo, "retry", "exp1", "tiny-llama_base", "capitalization")[1] \
        .startswith("experiments/exp1/retry.yaml already asks for attempt 2")
    assert (repo / "experiments/exp1/retry.yaml").read_text() == text
    assert run_cli(capsys, repo, "check", "-q", "experiments/exp1/retry.yaml")[0] == 0
    commit_all(repo, "Retry the control's evaluation", author="Alice Planner")
    assert run_cli(capsys, repo, "guard-status", "--base", "origin/main")[0] == 0
    # The pull request's diff shows the request to its reviewer.
    code, out, _ = run_cli(capsys, repo, "diff", "origin/main", "HEAD")
    assert code == 0
    assert ("- new attempt requested: `tiny-llama_base/capitalization` attempt 2 (the task's "
            "bug is fixed)") in out.splitlines(), out


@pytest.mark.usefixtures("git_env")
def test_check_locates_a_request_that_can_never_apply(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = failed_repo(origin, tmp_path)
    (repo / "experiments/exp1/retry.yaml").write_text(
        "retry:\n"
        "  - {run: tiny-llama_base, eval: capitalization, attempt: 3, reason: fixed}\n"
        "  - {run: tiny-llama_base, attempt: 2, reason: again}\n"
        "  - {run: tiny-llama_base, eval: capitalization, attempt: 2}\n")
    code, _, err = run_cli(capsys, repo, "check", "-q", "experiments/exp1")
    assert code == 1
    assert err.startswith("experiments/exp1/retry.yaml:4:5: retry[2].reason: required key is "
                          "missing\n"), err
    (repo / "experiments/exp1/retry.yaml").write_text(
        "retry:\n"
        "  - {run: tiny-llama_base, eval: capitalization, attempt: 3, reason: fixed}\n"
        "  - {run: tiny-llama_base, attempt: 2, reason: again}\n")
    code, _, err = run_cli(capsys, repo, "check", "-q", "experiments/exp1")
    assert code == 1
    assert err.splitlines()[:4] == [
        "experiments/exp1/retry.yaml:2:59: retry[0].attempt: tiny-llama_base/capitalization is "
        "at attempt 1 (failed): the new attempt is 2, not 3",
        "  hint: write `attempt: 2`",
        "experiments/exp1/retry.yaml:3:11: retry[1].run: tiny-llama_base/finetune is skipped; "
        "only a failed, cancelled or blocked step gets a new attempt",
        "  hint: remove this entry (`git pull` first if the watcher recorded a failure since)"]


# --- end to end: a real failure, a reviewed request, the watcher --------------------------------

@pytest.mark.slow
@pytest.mark.train
@pytest.mark.skipif(not TRAIN, reason="needs the train extra (pip install -e '.[train]')")
@pytest.mark.usefixtures("git_env")
def test_a_failed_evaluation_is_retried_through_a_merged_request_once(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"broken_{uuid.uuid4().hex[:6]}"
    laptop = clone(origin, tmp_path / "laptop", name="Alice Planner")
    watcher = clone(origin, tmp_path / "cluster", name="tunegit watcher")
    plan_a_broken_evaluation(laptop, name, "local")
    assert tunegit(["-C", str(watcher), "tiny-model", "--pretrain-steps", "0"]) == 0
    first = watch_until_done(watcher, origin, name, 420)
    failed = first["runs"][BASE]["evaluations"]["broken"]
    assert (failed["status"], failed["reason"]) == ("failed", "NonZeroExitCode")

    # Alice fixes the task and asks for a new attempt, on a branch; the checks pass.
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    base = git(laptop, "rev-parse", "HEAD").strip()
    git(laptop, "checkout", "-q", "-b", "retry-broken")
    (laptop / BROKEN_TASK).write_text(broken_task().replace('r["answer"]', 'r["output"]'))
    code, out, _ = run_cli(capsys, laptop, "retry", name, BASE, "broken",
                           "--reason", "the task read a key its dataset lacks; fixed")
    assert code == 0 and "asks for attempt 2 of tiny-llama_base/broken" in out
    assert git(laptop, "status", "--porcelain", "--", f"experiments/{name}/{STATUS_FILE}") == ""
    commit_all(laptop, "Fix the broken task; retry its evaluation", author="Alice Planner")
    assert run_cli(capsys, laptop, "check", "-q", f"experiments/{name}")[0] == 0

    # Bob merges it (the merge commit's author is who the watcher records); CI's guard passes.
    git(laptop, "checkout", "-q", "main")
    git(laptop, "merge", "-q", "--no-ff", "-m", "Merge retry-broken", "retry-broken",
        env={"GIT_AUTHOR_NAME": "Bob Reviewer", "GIT_AUTHOR_EMAIL": "bob@example.com"})
    merge = git(laptop, "rev-parse", "HEAD").strip()
    assert run_cli(capsys, laptop, "guard-status", "--base", base)[0] == 0
    git(laptop, "push", "-q", "origin", "main")

    # One cycle applies the request: a new attempt, recorded with who asked and why.
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    step = status_mod.parse(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}")) \
        .step(BASE, "broken")
    assert step.status in (states.PENDING, *states.LIVE_STATES)
    assert (step.attempt, step.attempts[0]["job_id"]) == (2, failed["job_id"])
    assert step.requested == {"id": "tiny-llama_base/broken@a2",
                              "reason": "the task read a key its dataset lacks; fixed",
                              "by": "Bob Reviewer <bob@example.com>", "commit": merge}
    body = git(origin, "log", "-1", "--format=%B", "main")
    assert (f"{name}/{BASE} broken: failed -> pending: retry requested by Bob Reviewer "
            f"<bob@example.com> in {merge[:10]}: the task read a key") in body, body

    # It is never applied again: the second attempt runs to its end, and stays attempt 2.
    done = watch_until_done(watcher, origin, name, 300)
    second = done["runs"][BASE]["evaluations"]["broken"]
    assert (second["status"], second["attempt"], len(second["attempts"])) == ("completed", 2, 1)
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    again = status_mod.parse(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}"))
    assert again.step(BASE, "broken").attempt == 2

    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    capsys.readouterr()
    assert tunegit(["-C", str(laptop), "history", f"{name}/{BASE}"]) == 0
    timeline = capsys.readouterr().out
    assert ("broken: failed -> submitted, job local-") in timeline
    assert (" (attempt 2, retry requested by Bob Reviewer <bob@example.com> in "
            f"{merge[:10]}: the task read a key its dataset lacks; fixed)") in timeline, timeline


@pytest.mark.usefixtures("git_env")
def test_the_request_tunegit_retry_writes_validates_against_tunegit_schema_retry(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import yaml

    jsonschema = pytest.importorskip("jsonschema")
    repo = failed_repo(origin, tmp_path)
    assert run_cli(capsys, repo, "retry", "exp1", "tiny-llama_base", "capitalization")[0] == 0
    code, out, _ = run_cli(capsys, repo, "schema", "retry")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "tunegit retry requests"
    data = yaml.safe_load((repo / "experiments/exp1/retry.yaml").read_text())
    assert data["retry"][0]["reason"] == "attempt 1 failed (NonZeroExitCode)"
    jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"retry": [{"run": "r", "attempt": 2}]}, schema)  # no reason


def test_history_says_who_asked_for_a_new_attempt() -> None:
    from tunegit.core.status import RunStatus, StatusFile
    from tunegit.edges.history import Revision, timeline

    def rev(n: str, step: Step) -> Revision:
        return Revision(n * 40, "tunegit watcher", f"2026-01-01T00:0{n}:00+00:00", "status",
                        True, False, StatusFile("exp", {"r": RunStatus(step, {})}))

    failed = Step(states.FAILED, job_id="7", job_name="tg:exp:r:ft", attempt=1)
    requested = {"id": "r/finetune@a2", "reason": "node failure", "by": "Bob <b@x>",
                 "commit": "d" * 40}
    retried = Step(states.SUBMITTED, job_id="8", job_name="tg:exp:r:ft:a2", attempt=2,
                   requested=requested)
    running = dataclasses.replace(retried, status=states.RUNNING)
    revs = [rev("1", failed), rev("2", retried), rev("3", running)]
    assert [e.what for e in timeline(revs, revs, "r")][1:] == [
        "finetune: failed -> submitted, job 8 (attempt 2, retry requested by Bob <b@x> in "
        "dddddddddd: node failure)",
        "finetune: submitted -> running, job 8"]


@pytest.mark.usefixtures("git_env")
def test_a_due_request_is_applied_before_the_poll_so_its_job_name_is_looked_up(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Crash safety: had a crashed cycle already submitted the new attempt, the poll must ask
    for its name to adopt the job instead of submitting it twice."""
    from tunegit.core.jobplan import job_name
    from tunegit.edges.workspace import Workspace
    from tunegit.executors import executor_factory
    from tunegit.loop.engine import prepare

    repo = failed_repo(origin, tmp_path)
    assert run_cli(capsys, repo, "retry", "exp1", "tiny-llama_base", "capitalization")[0] == 0
    ws = Workspace(repo)
    p = prepare(ws, "exp1", now=LATER, plan_commit=None, executor_for=executor_factory(ws))
    assert job_name("exp1", "tiny-llama_base", "capitalization", 2) in p.names
    assert [(t.run, t.key, t.old, t.new) for t in p.retried] == [
        ("tiny-llama_base", "capitalization", "failed", "pending")]


@pytest.mark.usefixtures("git_env")
def test_a_second_request_is_appended_keeping_the_files_own_comments(
        origin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = failed_repo(origin, tmp_path)
    path = repo / "experiments/exp1/retry.yaml"
    path.write_text("# asked in the lab meeting\n" + RETRY_YAML_TAIL)
    assert run_cli(capsys, repo, "retry", "exp1", "tiny-llama_rank8")[0] == 0
    assert path.read_text() == ("# asked in the lab meeting\n" + RETRY_YAML_TAIL
                                + "  - run: tiny-llama_rank8\n    attempt: 2\n"
                                "    reason: attempt 1 cancelled\n")
    path.write_text("retry: []\n")  # a layout it cannot append to: rewritten whole
    assert run_cli(capsys, repo, "retry", "exp1", "tiny-llama_rank8")[0] == 0
    assert path.read_text().endswith("retry:\n- run: tiny-llama_rank8\n  attempt: 2\n"
                                     "  reason: attempt 1 cancelled\n")
    assert run_cli(capsys, repo, "check", "-q", "experiments/exp1")[0] == 0


@pytest.mark.usefixtures("git_env")
def test_the_watcher_applies_no_request_that_cannot_apply_and_says_why(
        origin: Path, tmp_path: Path) -> None:
    from tunegit.core.records import REQUEST_REFUSED
    from tunegit.edges.workspace import Workspace
    from tunegit.executors import executor_factory
    from tunegit.loop.engine import prepare

    repo = failed_repo(origin, tmp_path)
    (repo / "experiments/exp1/retry.yaml").write_text(
        "retry:\n  - {run: tiny-llama_base, eval: capitalization, attempt: 3, reason: x}\n")
    ws = Workspace(repo)
    p = prepare(ws, "exp1", now=LATER, plan_commit=None, executor_for=executor_factory(ws))
    assert p.retried == () and p.status.step("tiny-llama_base", "capitalization").attempt == 1
    assert [(e.kind, e.message) for e in p.errors] == [(REQUEST_REFUSED, (
        "retry.yaml: tiny-llama_base/capitalization@a3 not applied: tiny-llama_base/"
        "capitalization is at attempt 1 (failed): the new attempt is 2, not 3 (write "
        "`attempt: 2`)"))]
