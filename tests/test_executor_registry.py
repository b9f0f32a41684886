"""Executors are plug-ins: one module and one registry line, and nothing else names them.

This test module is itself a throwaway executor backend ("queued": takes every job, reports
it pending), registered for each test through the registry. What `tunegit run` polls at,
what wakes the watcher and which names a site file may use all come from the registry and
the backend's own attributes.
"""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pytest

from planfixtures import (
    make_repo,
    minimal_plan,
    run_cli,
    weightless_model,
    with_text,
    write_plan,
)
from tunegit.commands import run as run_cmd
from tunegit.edges.workspace import Workspace
from tunegit.executors import EXECUTORS
from tunegit.executors.base import Backoff, JobObservation, JobPlan, Poll, SitePaths, WakeFile
from tunegit.loop.daemon import JOB, watch_paths
from tunegit.spec.site import Site

NAME = "queued"
POLL_S = 7.0  # nobody else polls at 7 s: a delay of 7 s can only come from here
STATE = "queued-state"
DONE_FILE = "done"


class QueuedExecutor:
    name = NAME
    supports_dependencies = True

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.submitted: list[str] = []

    def submit(self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None,
               ) -> dict[str, str]:
        self.submitted += [job.name for job in jobs]
        return {job.name: f"q{len(self.submitted) - len(jobs) + i}" for i, job in enumerate(jobs)}

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        return Poll({i: JobObservation(i, "PENDING") for i in job_ids}, {})

    def cancel(self, job_ids: Collection[str]) -> None:
        pass


# --- the backend: what the registry imports -------------------------------------------------

def create(site: Site, paths: SitePaths) -> QueuedExecutor:
    return QueuedExecutor(paths.site_dir(site.output_dir) / STATE)


def jobs_run_here(site: Site) -> bool:
    return True  # its "jobs" are directories on this machine


def poll_backoff(site: Site) -> Backoff:
    return Backoff(base_s=POLL_S, jitter=0.0)


def wake_files(site: Site, paths: SitePaths) -> tuple[WakeFile, ...]:
    return (WakeFile(paths.site_dir(site.output_dir) / STATE, DONE_FILE),)


# --------------------------------------------------------------------------------------------

SITE = f"""\
executor: {NAME}
models_dir: .tunegit/models
output_dir: .tunegit/outputs
gpu: {{type: cpu, memory_gib: 0, count: 1}}
device: cpu
dtype: fp32
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose site `queued` runs on this module's executor, and a plan for it."""
    monkeypatch.setitem(EXECUTORS.modules, NAME, __name__)
    root = make_repo(tmp_path / "repo")
    write_plan(root, "exp", with_text(minimal_plan("exp"), "site: della\n", f"site: {NAME}\n"))
    (root / "sites" / f"{NAME}.yaml").write_text(SITE)
    weightless_model(root, "Llama-3.2-1B-Instruct")  # the preflight finds the plan's model
    return root


def test_a_registered_executor_is_a_valid_site_executor(repo: Path) -> None:
    assert Workspace(repo).load_site(NAME).executor == NAME


def test_the_watcher_wakes_on_the_files_a_registered_executor_names(repo: Path) -> None:
    ws = Workspace(repo)
    state = ws.site_dir(ws.load_site(NAME).output_dir) / STATE
    watched = watch_paths(ws, repo / ".git")
    assert [(w.directory, w.name, w.kind) for w in watched if w.directory == state] == [
        (state, DONE_FILE, JOB)]
    assert state.is_dir()  # made, so that it can be watched before the first job
    ended = state / "q0" / DONE_FILE
    assert [w.kind for w in watched if w.matches(ended)] == [JOB]
    assert not [w for w in watched if w.matches(state / "q0" / "started")]


def test_run_submits_through_a_registered_executor_and_polls_at_its_interval(
        repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        raise KeyboardInterrupt  # one cycle is enough: the jobs are in

    monkeypatch.setattr(run_cmd, "time", types.SimpleNamespace(
        sleep=sleep, monotonic=run_cmd.time.monotonic))
    code, out, err = run_cli(capsys, repo, "run", "exp")
    assert code == 130, err
    assert "fine-tuning: pending -> submitted (job q0)" in out, out
    assert delays == [POLL_S]


def test_an_unknown_executor_is_located_in_the_site_file_with_the_registered_names(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = repo / "sites" / f"{NAME}.yaml"
    site.write_text(site.read_text().replace(f"executor: {NAME}", "executor: kubernetes"))
    code, _, err = run_cli(capsys, repo, "check", "experiments/exp")
    assert code == 1
    assert err.startswith(
        f"sites/{NAME}.yaml:1:11: executor: unknown executor 'kubernetes'\n"
        f"  hint: registered executors: local, {NAME}, slurm\n"), err
