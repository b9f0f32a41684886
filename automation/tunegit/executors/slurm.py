"""The SLURM executor: sbatch, one squeue per poll cycle, sacct only for what squeue forgot.

Text in and out is built and parsed in ``slurm_parse`` (pure); here each command
is one line through ``runner``, so tests can count or fake the calls.

Names and ids, and finding jobs again after a crash:

- A job submitted on its own carries its ``JobPlan.name`` as SLURM job name.
- Jobs with equal resources and no ``after`` go as one job array. Its SLURM
  name is ``<common prefix>array-<hash of the task names>``; its batch script is
  a wrapper written (atomically, before sbatch) to
  ``<common parent of the workdirs' parents>/.tunegit/<array name>.sh`` whose
  second line lists the task names in task order. Task N of array ID is
  ``ID_N``.
- ``poll(ids, names=...)`` finds names in the same single squeue answer: plain
  jobs by SLURM name, array tasks through the wrapper path that squeue reports
  as the job's command. So a restarted caller that lost the ids asks
  ``poll((), names=[every name it may have submitted])`` before submitting again;
  this works while squeue still lists the job (live, or up to MinJobAge after
  it ended). The caller must store the ids ``submit`` returns right away.

As a registered backend (``create``, ``poll_backoff``, ``wake_files``): polls follow the
site's ``slurm.poll_interval_s`` with jitter, doubling while the scheduler does not answer;
nothing here wakes the watcher (job states are the scheduler's, asked on the timer).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Protocol

from tunegit.core import states
from tunegit.executors import slurm_parse as sp
from tunegit.executors.base import (
    Backoff,
    JobObservation,
    JobPlan,
    Poll,
    Resources,
    SchedulerError,
    SitePaths,
    SubmitError,
    WakeFile,
    job_environment,
)
from tunegit.files import write_if_changed
from tunegit.spec.site import Site

COMMAND_TIMEOUT_S = 60.0
VANISHED_TASK = "ArrayTaskVanished"


class Completed(Protocol):
    """What a runner returns (``subprocess.CompletedProcess[str]`` fits)."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def job_runner(argv: Sequence[str]) -> Completed:
    """``run_command`` with the job environment: sbatch exports it to the job (--export=ALL),
    so jobs find this Python's `tune` and `inspect` like local jobs do."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          env=job_environment())


# What sbatch prints when SLURM itself refuses a job (bad partition, over QOS, ...).
REFUSED = "Batch job submission failed"


class PartialSubmitError(SubmitError):
    """A submit stopped part way: ``submitted`` holds the ids that did go in."""

    def __init__(self, job_name: str, message: str, submitted: Mapping[str, str], *,
                 transient: bool = False):
        super().__init__(job_name, message, submitted, transient=transient)


class SlurmExecutor:
    """Runs JobPlans on SLURM; see the module docstring for names, arrays and restarts."""

    name = "slurm"
    supports_dependencies = True

    def __init__(
        self,
        runner: Runner = run_command,
        *,
        jobcomp_log: Path | None = None,
        tz: tzinfo | None = None,
        use_arrays: bool = True,
    ):
        self.runner = runner
        self.jobcomp_log = jobcomp_log  # read when sacct says accounting is disabled
        self.tz = tz  # the zone SLURM prints times in; None: this process's local zone
        self.use_arrays = use_arrays
        self._registries: dict[str, list[str]] = {}

    # ------------------------------------------------------------ submit

    def submit(
        self, jobs: Sequence[JobPlan], *, known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Submit ``jobs``; ``known`` maps names submitted earlier to their ids (for ``after``).

        Returns name -> id for the jobs of this call. Raises SubmitError (a
        PartialSubmitError once anything went in) on the first refusal.
        """
        known = known or {}
        for job in jobs:
            _check_script(job)
        ids: dict[str, str] = {}
        try:
            for group in independent_groups(jobs, self.use_arrays):
                ids.update(self._submit_group(group))
            for job in dependency_order([j for j in jobs if j.after], known.keys() | ids.keys()):
                ids[job.name] = self._sbatch(
                    job.name, sp.sbatch_argv(job, self._after(job, known, ids))
                )
        except SubmitError as error:
            if not ids:
                raise
            raise PartialSubmitError(error.job_name, error.words, ids,
                                     transient=error.transient) from error
        return ids

    def _submit_group(self, group: Sequence[JobPlan]) -> dict[str, str]:
        if len(group) == 1:
            return {group[0].name: self._sbatch(group[0].name, sp.sbatch_argv(group[0]))}
        plan = sp.plan_array(group)
        write_if_changed(plan.wrapper, sp.render_array_wrapper(plan))
        array_id = self._sbatch(plan.name, sp.sbatch_array_argv(plan), recover=False)
        return {job.name: f"{array_id}_{index}" for index, job in enumerate(group)}

    @staticmethod
    def _after(job: JobPlan, known: Mapping[str, str], ids: Mapping[str, str]) -> list[str]:
        return [ids.get(parent) or known[parent] for parent in job.after]

    def _sbatch(self, job_name: str, argv: Sequence[str], *, recover: bool = True) -> str:
        try:
            result = self.runner(argv)
        except subprocess.TimeoutExpired:
            found = self._recover(job_name) if recover else None
            if found:
                return found
            raise SubmitError(
                job_name,
                "sbatch timed out: the job may be queued; poll its name before submitting again",
                transient=True,
            ) from None
        except OSError as error:
            raise SubmitError(job_name, f"cannot run sbatch: {error}") from None
        job_id = sp.parse_sbatch_id(result.stdout)
        if result.returncode != 0 or not job_id:
            message = result.stderr.strip() or result.stdout.strip() or f"rc={result.returncode}"
            refused = REFUSED in result.stderr
            found = self._recover(job_name) if recover and not refused else None
            if found:
                return found
            raise SubmitError(job_name, sp.one_line(message),
                              transient=sp.refused_for_now(message))
        return job_id

    def _recover(self, job_name: str) -> str | None:
        """sbatch failed without SLURM's refusal: did the job go in anyway (a lost reply)?"""
        answer = self.poll((), [job_name])
        return answer.names.get(job_name) if answer.ok else None

    # ------------------------------------------------------------ poll

    def poll(self, job_ids: Collection[str], names: Collection[str] = ()) -> Poll:
        """One squeue for everything; one sacct (or the jobcomp log) for ids squeue forgot."""
        queue = self._call(sp.squeue_argv())
        if isinstance(queue, str):
            return Poll(jobs={}, names={}, ok=False, error=queue)
        rows = sp.parse_squeue(queue.stdout, self.tz)
        seen = sp.observations_by_id(rows)
        jobs = {job_id: seen[job_id] for job_id in job_ids if job_id in seen}
        missing = sorted(set(job_ids) - jobs.keys())
        error, lost = "", {}
        if missing:
            finished, error, record = self._finished(missing)
            jobs.update(finished)
            if not error:
                jobs.update(vanished_tasks(set(missing) - finished.keys(), rows))
                lost = {job_id: f"job {job_id} is known neither to squeue nor to {record}"
                        for job_id in missing if job_id not in jobs}
        found = self._names(rows, names)
        return Poll(jobs=jobs, names=found, ok=True, error=error,
                    origins=self._origins(rows, found), lost=lost)

    def _finished(self, job_ids: Sequence[str]) -> tuple[dict[str, JobObservation], str, str]:
        """Jobs squeue no longer lists: sacct, else the jobcomp log. Returns what was found,
        why there is no answer ('' = answered) and which record answered."""
        result = self._call(sp.sacct_argv(job_ids))
        if not isinstance(result, str):
            found = sp.parse_sacct(result.stdout, self.tz)
            return {i: found[i] for i in job_ids if i in found}, "", "sacct"
        if self.jobcomp_log is None:
            return {}, result, ""
        try:
            text = self.jobcomp_log.read_text(errors="replace")
        except OSError as error:
            return {}, f"{result}; jobcomp log: {error}", ""
        found = sp.parse_jobcomp(text, self.tz)
        return ({i: found[i] for i in job_ids if i in found}, "",
                f"the jobcomp log {self.jobcomp_log}")

    def _names(self, rows: Sequence[sp.QueueRow], names: Collection[str]) -> dict[str, str]:
        if not names:
            return {}
        commands = {
            row.command for row in rows if row.task_ids and sp.is_array_wrapper(row.command)
        }
        registries = {command: self._registry(command) for command in commands}
        found = sp.ids_by_name(rows, registries)
        return {name: found[name] for name in names if name in found}

    @staticmethod
    def _origins(rows: Sequence[sp.QueueRow], names: Mapping[str, str]) -> dict[str, str]:
        """The script each job found by name runs (an array task: its array's wrapper)."""
        commands = {job_id: row.command for row in rows for job_id in sp.row_ids(row)}
        return {name: commands[job_id] for name, job_id in names.items()
                if commands.get(job_id)}

    def _registry(self, wrapper: str) -> list[str]:
        if wrapper not in self._registries:
            try:
                text = Path(wrapper).read_text(errors="replace")
            except OSError:
                return []  # not readable from here: retried next cycle
            self._registries[wrapper] = sp.parse_array_registry(text)
        return self._registries[wrapper]

    def _call(self, argv: Sequence[str]) -> Completed | str:
        """The result, or why there is none (a string): rc != 0, timeout, no binary."""
        try:
            result = self.runner(argv)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{argv[0]}: {error}"
        if result.returncode != 0:
            return f"{argv[0]} rc={result.returncode}: {result.stderr.strip()}"
        return result

    # ------------------------------------------------------------ cancel

    def cancel(self, job_ids: Collection[str]) -> None:
        """One scancel for all ids (SLURM ignores unknown ones). Raises SchedulerError."""
        if not job_ids:
            return
        result = self._call(sp.scancel_argv(sorted(job_ids)))
        if isinstance(result, str):
            raise SchedulerError(f"the scheduler did not cancel {', '.join(sorted(job_ids))}: "
                                 f"{result}", hint="nothing was recorded as cancelled (the jobs "
                                 "may still run): run the same `tunegit cancel` again")


# ---------------------------------------------------------------- helpers


def _check_script(job: JobPlan) -> None:
    """Refuse a job whose script's #SBATCH header is not its plan (sbatch reads the header)."""
    try:
        text = job.script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SubmitError(job.name, f"cannot read its script {job.script}: {error}") from None
    problem = sp.check_header(job, text)
    if problem:
        raise SubmitError(job.name, f"{job.script}: {problem} (hint: re-render the "
                          "experiment's files with `tunegit scaffold EXPERIMENT --force`)")


def independent_groups(jobs: Sequence[JobPlan], use_arrays: bool = True) -> list[list[JobPlan]]:
    """Jobs without ``after``, grouped by equal Resources (first-seen order) when arrays are on."""
    groups: dict[Resources, list[JobPlan]] = {}
    singles: list[list[JobPlan]] = []
    for job in jobs:
        if job.after:
            continue
        if use_arrays:
            groups.setdefault(job.resources, []).append(job)
        else:
            singles.append([job])
    return list(groups.values()) if use_arrays else singles


def dependency_order(jobs: Sequence[JobPlan], ready: Iterable[str]) -> list[JobPlan]:
    """Dependants after their parents; a parent that is neither here nor ready is an error."""
    done = set(ready)
    todo = list(jobs)
    ordered: list[JobPlan] = []
    while todo:
        runnable = [job for job in todo if done.issuperset(job.after)]
        if not runnable:
            job = todo[0]
            unknown = sorted(set(job.after) - done)
            raise SubmitError(
                job.name,
                f"depends on {', '.join(unknown)}, which has no job id "
                "(not submitted, or a dependency cycle)",
            )
        ordered += runnable
        done.update(job.name for job in runnable)
        todo = [job for job in todo if job not in runnable]
    return ordered


def vanished_tasks(
    job_ids: Iterable[str], rows: Sequence[sp.QueueRow]
) -> dict[str, JobObservation]:
    """Array tasks missing from squeue and accounting while squeue still lists their array:
    SLURM drops a pending task that is cancelled on its own from both."""
    arrays = {row.array_job_id for row in rows if row.task_ids}
    found = {}
    for job_id in job_ids:
        array_id, sep, _task = job_id.partition("_")
        if sep and array_id in arrays:
            found[job_id] = JobObservation(job_id, states.JOB_CANCELLED, reason=VANISHED_TASK)
    return found


# ---------------------------------------------------------------- the backend


def create(site: Site, paths: SitePaths) -> SlurmExecutor:
    return SlurmExecutor(job_runner)


def poll_backoff(site: Site) -> Backoff:
    base = site.slurm.poll_interval_s
    return Backoff(base_s=base, max_s=max(Backoff.max_s, base), jitter=0.1)


def wake_files(site: Site, paths: SitePaths) -> tuple[WakeFile, ...]:
    return ()


def jobs_run_here(site: Site) -> bool:
    """Not known: the jobs run on the cluster's nodes, whose paths may not be visible here."""
    return False
