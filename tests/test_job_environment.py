"""The site's job environment in every script: `module purge` before the modules, setup lines
before the job's work, teardown lines when it ends (failed or not, its exit status kept).
The order is read off the rendered script; setup and teardown are seen running in a real
job of the local executor (a fine-tune of a model that was never made: it fails at once)."""

from __future__ import annotations

import time
from pathlib import Path

from planfixtures import LOCAL_FILES, make_repo, tiny_plan
from tunegit.core import states
from tunegit.core.jobplan import job_name
from tunegit.core.observe import FINISHED_JOB_STATES
from tunegit.core.reconcile import Submission
from tunegit.edges.analysis import analyse
from tunegit.edges.scaffold import apply_writes, plan_writes, render_context, render_files
from tunegit.edges.workspace import PLAN_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.executors.base import JobPlan
from tunegit.loop.engine import job_plan

NAME = "job_env"
SETUP = "echo \"setup: $TUNEGIT_SITE_MARK\""
TEARDOWN = ("echo teardown ran", "false")  # a failing teardown line changes nothing


def rendered(tmp_path: Path, environment: str) -> tuple[Workspace, JobPlan, str]:
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={NAME: tiny_plan(NAME)})
    site = repo / "sites/local.yaml"
    site.write_text(site.read_text() + f"environment: {environment}\n")
    ws = Workspace(repo)
    a = analyse(ws, ws.experiment_dir(NAME) / PLAN_FILE)
    ctx = render_context(a)
    files = render_files(ctx, a.expansion.runs, a.expansion.evaluations, None)
    apply_writes(a.work_dir, files, plan_writes(a.work_dir, files))
    run = a.expansion.runs[0].name
    job = job_plan(Submission(run, None, job_name(NAME, run, "ft")), a, ctx)
    return ws, job, job.script.read_text()


def test_purge_modules_variables_setup_and_teardown_come_in_that_order(tmp_path: Path) -> None:
    _, _, script = rendered(tmp_path, "{purge: true, modules: [cuda/12.4], "
                            "variables: {TUNEGIT_SITE_MARK: here}, "
                            f"setup: ['{SETUP}'], teardown: {list(TEARDOWN)}}}")
    lines = script.splitlines()
    order = [lines.index(line) for line in (
        "module purge", "module load cuda/12.4", "export TUNEGIT_SITE_MARK=here",
        "trap tunegit_teardown EXIT", SETUP)]
    assert order == sorted(order), script
    assert order[-1] < next(n for n, line in enumerate(lines) if line.startswith("tune run"))


def test_without_them_the_script_has_no_purge_setup_or_trap(tmp_path: Path) -> None:
    _, _, script = rendered(tmp_path, "{modules: [cuda/12.4]}")
    assert "module purge" not in script and "trap" not in script


def test_a_failing_job_runs_setup_first_and_teardown_last_keeping_its_exit_status(
        tmp_path: Path) -> None:
    ws, job, _ = rendered(tmp_path, "{variables: {TUNEGIT_SITE_MARK: here}, "
                          f"setup: ['{SETUP}'], teardown: {list(TEARDOWN)}}}")
    executor = executor_factory(ws)(analyse(ws, ws.experiment_dir(NAME) / PLAN_FILE).site)
    job_id = executor.submit([job])[job.name]
    deadline = time.monotonic() + 120
    while (obs := executor.poll([job_id]).jobs.get(job_id)) is None \
            or obs.state not in FINISHED_JOB_STATES:
        assert time.monotonic() < deadline, obs
        time.sleep(0.5)
    log = job.log.read_text()
    assert obs.state == states.JOB_FAILED and obs.exit_code not in (0, None), (obs, log)
    assert log.startswith("setup: here\n"), log
    assert log.rstrip().endswith("teardown ran"), log
