"""One reconcile cycle over experiments: scaffold, observe, decide (pure), act, write status.

Used by `tunegit run` (in a loop until done), `tunegit reconcile --once` and `tunegit watch`.
Status is written once per experiment per cycle, atomically, only when its bytes change.
Each executor is asked once per cycle for the jobs of all experiments (`poll_all`), and a
site's limits (max_parallel, max_submitted) are shared by all its experiments of the cycle.
A submission the scheduler refuses for now stays pending and is tried again after a back-off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from tunegit.core import records
from tunegit.core.expand import expand
from tunegit.core.jobplan import JobPlan, log_path
from tunegit.core.reconcile import (
    Submission,
    decide,
    deferred,
    held_before,
    hold_all,
    live_job_ids,
    wanted_names,
)
from tunegit.core.records import CycleError, CycleResult, Transition
from tunegit.core.states import (
    COMPLETED,
    FAILED,
    JOB_COMPLETED,
    JOB_PENDING,
    JOB_RUNNING,
    LIVE_STATES,
    PENDING,
    REASON_CANNOT_RUN,
    REASON_SUBMIT_FAILED,
    SUBMITTED,
    TERMINAL_STATES,
)
from tunegit.core.status import StatusFile, dump, initial, sync
from tunegit.edges import harvest, retry_requests
from tunegit.edges.analysis import Analysis, analyse, executor_capacity
from tunegit.edges.crashpoints import crashpoint
from tunegit.edges.preflight import Held, preflight
from tunegit.edges.results_files import RESULTS_MD, write_results
from tunegit.edges.scaffold import (
    CONFLICT,
    apply_writes,
    body,
    conflicted_runs,
    plan_writes,
    render_context,
    render_files,
    run_files_hash,
)
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.errors import PlanError, TunegitError
from tunegit.executors import ExecutorFactory
from tunegit.executors.base import Executor, Poll, SubmitError
from tunegit.files import read_rendered, read_status, tail, write_if_changed
from tunegit.tools import RenderContext, get_evaluation, get_preparation

__all__ = ["CycleError", "CycleResult", "ExecutorFactory", "Transition", "cycle"]


@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    transitions: tuple[Transition, ...]
    written: bool
    status: StatusFile
    errors: tuple[CycleError, ...]
    results: tuple[Path, ...] = ()  # results files written next to the plan


def cycle(ws: Workspace, experiments: Sequence[str], *, now: str, plan_commit: str | None,
          executor_for: ExecutorFactory, site_override: str | None = None) -> CycleResult:
    """Reconcile each named experiment once; an invalid plan stalls only its own experiment.

    Each executor is polled once for the jobs of all experiments (one squeue per cycle,
    however many experiments have jobs), after every experiment is prepared and before
    any of them submits.
    """
    transitions: list[Transition] = []
    written: list[Path] = []
    errors: list[CycleError] = []
    live = pending = 0
    prepared = []
    for name in experiments:
        try:
            prepared.append(prepare(ws, name, now=now, plan_commit=plan_commit,
                                    executor_for=executor_for, site_override=site_override))
        except TunegitError as exc:
            errors.append(_failure(name, exc))
            if isinstance(exc, PlanError):
                held = _hold_plan(ws, name, exc, now)
                if held is not None:
                    transitions += held[0]
                    written.append(held[1])
    polls = poll_all(prepared)
    # A site's limits hold across its experiments: each is given what the others leave.
    live_of = {p.name: _live(p.status) for p in prepared}
    for p in prepared:
        try:
            result = finish(p, share(polls[id(p.executor)], p.job_ids, p.names), now=now,
                            plan_commit=plan_commit, others_live=_others_live(p, prepared, live_of))
        except TunegitError as exc:
            errors.append(_failure(p.name, exc))
            continue
        transitions += result.transitions
        errors += result.errors
        if result.written:
            written.append(ws.experiment_dir(p.name) / STATUS_FILE)
        written += result.results
        live_of[p.name] = _live(result.status)
        live += live_of[p.name]
        pending += sum(1 for _, _, s in result.status.steps() if s.status == PENDING)
    return CycleResult(tuple(transitions), tuple(written), live, pending, tuple(errors))


def _live(status: StatusFile) -> int:
    return sum(1 for _, _, s in status.steps() if s.status in LIVE_STATES)


def _others_live(p: Prepared, prepared: Sequence[Prepared], live_of: Mapping[str, int]) -> int:
    """The live jobs of this cycle's other experiments on ``p``'s site (as last known: after
    their own pass when it came first), which count against its max_parallel/max_submitted."""
    return sum(live_of[o.name] for o in prepared
               if o is not p and o.analysis.site.name == p.analysis.site.name)


def _failure(name: str, exc: TunegitError) -> CycleError:
    if isinstance(exc, PlanError):
        return CycleError(name, records.INVALID_PLAN,
                          f"invalid plan; nothing submitted until it is fixed:\n{exc.format()}")
    return CycleError(name, records.STOPPED, exc.format())


def _hold_plan(ws: Workspace, name: str, exc: PlanError, now: str,
               ) -> tuple[tuple[Transition, ...], Path] | None:
    """A plan that cannot run here: its pending steps blocked with the reason, the status
    written only when its bytes change (so a second cycle commits nothing). None when its
    steps cannot even be listed (the plan does not load, and no status file names them)."""
    path = ws.experiment_dir(name) / STATUS_FILE
    try:
        before = read_status(path)
        if before is None:
            before = initial(expand(ws.load_plan(ws.experiment_dir(name) / PLAN_FILE).plan),
                             name)
    except (TunegitError, ValueError):
        return None
    message = "; ".join(" ".join(line.split()) for line in exc.format().splitlines())
    status, transitions = hold_all(before, name, f"cannot run: {message}", REASON_CANNOT_RUN,
                                   now)
    return (transitions, path) if write_if_changed(path, dump(status)) else None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One experiment rendered and read, waiting for this cycle's scheduler answer."""

    name: str
    analysis: Analysis
    executor: Executor
    ctx: RenderContext
    files: Mapping[str, str]
    conflicts: frozenset[str]
    errors: tuple[CycleError, ...]
    status: StatusFile
    job_ids: tuple[str, ...]
    names: tuple[str, ...]
    retried: tuple[Transition, ...] = ()  # retry requests applied (pending again)
    held: Held = dataclasses.field(default_factory=dict)  # (run, key) -> why it cannot run


def share(poll: Poll, job_ids: Sequence[str], names: Sequence[str]) -> Poll:
    """One experiment's part of a shared answer (what its own poll would have said)."""
    return Poll({i: poll.jobs[i] for i in job_ids if i in poll.jobs},
                {n: poll.names[n] for n in names if n in poll.names}, poll.ok, poll.error,
                origins={n: poll.origins[n] for n in names if n in poll.origins},
                lost={i: poll.lost[i] for i in job_ids if i in poll.lost})


def poll_all(prepared: Sequence[Prepared]) -> dict[int, Poll]:
    """One poll per executor, for the live jobs and pending names of all its experiments."""
    groups: dict[int, tuple[Executor, dict[str, None], dict[str, None]]] = {}
    for p in prepared:
        _, ids, names = groups.setdefault(id(p.executor), (p.executor, {}, {}))
        ids.update(dict.fromkeys(p.job_ids))
        names.update(dict.fromkeys(p.names))
    return {key: executor.poll(list(ids), list(names))
            for key, (executor, ids, names) in groups.items()}


def reconcile_experiment(ws: Workspace, name: str, *, now: str, plan_commit: str | None,
                         executor_for: ExecutorFactory,
                         site_override: str | None = None) -> ExperimentResult:
    p = prepare(ws, name, now=now, plan_commit=plan_commit, executor_for=executor_for,
                site_override=site_override)
    return finish(p, p.executor.poll(p.job_ids, p.names), now=now, plan_commit=plan_commit)


def prepare(ws: Workspace, name: str, *, now: str, plan_commit: str | None,
            executor_for: ExecutorFactory, site_override: str | None = None) -> Prepared:
    """Analyse, render the run files, read the status and apply the retry requests that are
    due (before the poll, so that a new attempt's job name is looked up like any pending
    one's): everything before the poll."""
    a = analyse(ws, ws.experiment_dir(name) / PLAN_FILE, site_override)
    executor = executor_for(a.site)
    before = read_status(ws.experiment_dir(name) / STATUS_FILE)
    status = initial(a.expansion, name) if before is None else sync(before, a.expansion, name)
    status, retried, refused = retry_requests.apply_due(ws, name, status, now)
    ctx = render_context(a, status)
    files = render_files(ctx, a.expansion.runs, a.expansion.evaluations, plan_commit)
    live = live_runs(status)  # a running job's files are never rewritten under it
    actions = [x for x in plan_writes(a.work_dir, files) if x.path.split("/")[0] not in live]
    moved = changed_under_jobs(live, a.work_dir, files,
                               get_preparation(ctx.plan.tools.preparation).training_files)
    apply_writes(a.work_dir, files, [x for x in actions if x.action != CONFLICT])
    crashpoint("after_render")
    errors = tuple(CycleError(name, records.CONFLICT,
                              f"{x.path} was {x.detail}; not overwritten, its run is held "
                              f"(hint: `tunegit scaffold {name} --force` to overwrite)")
                   for x in actions if x.action == CONFLICT)
    errors += tuple(CycleError(name, records.CONFLICT,
                               f"run {run}: the plan changed under its {what} job {job}: its "
                               "files are kept as submitted and nothing more of it is submitted "
                               "(hint: revert the change on the branch, or give the changed "
                               "run a new run name)")
                    for run, (what, job) in moved.items())
    errors += tuple(CycleError(name, records.REQUEST_REFUSED, why) for why in refused)
    held = preflight(a.ws, a.site, a.expansion,
                     [(run, key) for run, key, step in status.steps()
                      if step.status == PENDING or held_before(step)])
    return Prepared(name, a, executor, ctx, files,
                    frozenset(conflicted_runs(actions)) | frozenset(moved), errors,
                    status, tuple(live_job_ids(status)), tuple(wanted_names(name, status)),
                    retried, held)


def live_runs(status: StatusFile) -> dict[str, tuple[str, str]]:
    """Runs whose fine-tuning job is live (submitted or running): {run: (state, job id)}."""
    return {run: (step.status, step.job_id or "?") for run, key, step in status.steps()
            if key is None and step.status in LIVE_STATES}


def changed_under_jobs(live: Mapping[str, tuple[str, str]], work_dir: Path,
                       files: Mapping[str, str], training: Sequence[str],
                       ) -> dict[str, tuple[str, str]]:
    """Live runs whose training config, rendered now, differs from the one their job runs
    with (on disk since its submission): a plan change pushed to the branch under a running
    job. Their files stay as submitted (bash reads a running script as it goes, and the
    record must say what ran), and nothing more of the run is submitted. A change to a job
    script's header alone (a time limit moved with new history) is not one: it is written
    once the job is over."""
    moved = {}
    for run, state in live.items():
        for rel in (f"{run}/{name}" for name in training):
            on_disk = read_rendered(work_dir / rel)
            if rel in files and on_disk is not None and body(on_disk) != body(files[rel]):
                moved[run] = state
    return moved


def finish(p: Prepared, poll: Poll, *, now: str, plan_commit: str | None,
           others_live: int = 0) -> ExperimentResult:
    """Decide on this cycle's answer, harvest, submit, write the status once; ``others_live``
    jobs of other experiments on the same site take their part of its capacity."""
    a, ctx, name, executor, status = p.analysis, p.ctx, p.name, p.executor, p.status
    errors = list(p.errors)
    if not poll.ok:
        errors.append(CycleError(name, records.SCHEDULER_UNANSWERED,
                                 f"scheduler not answering ({poll.error}); "
                                 "states unknown this cycle, nothing submitted"))
    decision = decide(a.expansion, status, poll, experiment=name, now=now,
                      capacity=_capacity(executor_capacity(executor, a.site), others_live),
                      dependencies=executor.supports_dependencies, logs=_failed_logs(status, poll),
                      work_dir=str(a.work_dir), held=p.held)
    status = _with_logs(decision.status, ctx, a)
    status, harvested = harvest.completed(status, decision.transitions, a, ctx)
    held = [s for s in decision.submit if s.run not in p.conflicts]
    status, submitted, submit_errors = _submit(executor, status, held, a, ctx, p.files, now,
                                               plan_commit)
    if plan_commit and submitted:
        status = dataclasses.replace(status, plan_commit=plan_commit)
    crashpoint("before_status_write")
    changed = write_if_changed(a.ws.experiment_dir(name) / STATUS_FILE, dump(status))
    crashpoint("after_status_write")
    results = _results(a, status, decision.transitions + harvested)
    return ExperimentResult(p.retried + decision.transitions + harvested + submitted, changed,
                            status, tuple(errors + submit_errors), results)


def _capacity(site_capacity: int | None, others_live: int) -> int | None:
    return None if site_capacity is None else max(0, site_capacity - others_live)


def _results(a: Analysis, status: StatusFile,
             transitions: Sequence[Transition]) -> tuple[Path, ...]:
    """Write the results files next to the plan when an evaluation finished this cycle, or
    when they are missing though evaluations completed (a cycle that crashed before writing
    them, stray copies set aside); the paths written, to go into the status commit."""
    directory = a.ws.experiment_dir(a.name)
    finished = any(t.key is not None and t.new in TERMINAL_STATES for t in transitions)
    scored = any(key is not None and step.status == COMPLETED for _, key, step in status.steps())
    if not (finished or (scored and not (directory / RESULTS_MD).is_file())):
        return ()
    return tuple(directory / f for f in write_results(directory, a.loaded.plan, status))


def _failed_logs(status: StatusFile, poll: Poll) -> dict[str, str]:
    """The tail of the own log of each live job that ended other than completed: where the
    reconcile reads its cause (the last traceback's exception line, a CUDA out-of-memory)."""
    out = {}
    for _, _, step in status.steps():
        obs = poll.jobs.get(step.job_id or "")
        if (step.status in LIVE_STATES and obs is not None and step.log
                and obs.state not in (JOB_PENDING, JOB_RUNNING, JOB_COMPLETED)):
            out[obs.job_id] = tail(Path(step.log))
    return out


def _with_logs(status: StatusFile, ctx: RenderContext, a: Analysis) -> StatusFile:
    """Steps adopted after a crash have a job but no recorded log path yet: add it."""
    for run, key, step in status.steps():
        if step.status in LIVE_STATES and step.job_id and not step.log:
            path = log_path(ctx.run_dir(a.expansion.run(run)), key, step.attempt or 1)
            status = status.with_step(run, key, step.moved(step.status, "", log=path))
    return status


def job_plan(sub: Submission, a: Analysis, ctx: RenderContext) -> JobPlan:
    """The step's JobPlan, the same one its script's header was rendered from."""
    run = a.expansion.run(sub.run)
    if sub.key is None:
        prep = get_preparation(ctx.plan.tools.preparation)
        job = ctx.finetune_job(run, prep.finetune_script(ctx, run))
    else:
        ev = next(e for e in a.expansion.evaluations_of(run.name) if e.key == sub.key)
        evaluator = get_evaluation(ctx.plan.tools.evaluation)
        job = ctx.eval_job(run, ev, evaluator.eval_script(ctx, run, ev))
    if job.name != sub.name:
        raise TunegitError(f"job plan {job.name!r} does not match the step's name {sub.name!r}",
                           hint="this is a bug in tunegit; report it with the status file")
    return dataclasses.replace(job, after=sub.after)


def _planned(a: Analysis, sub: Submission) -> dict[str, object] | None:
    """The estimate a fine-tuning job is submitted with (compared with what it measured)."""
    if sub.key is not None:
        return None
    est = a.estimate.run(sub.run)
    return {"train_minutes": round(est.train_minutes.value, 3), "source": est.source}


def _submit(executor: Executor, status: StatusFile, subs: Sequence[Submission], a: Analysis,
            ctx: RenderContext, files: Mapping[str, str], now: str, plan_commit: str | None,
            ) -> tuple[StatusFile, tuple[Transition, ...], list[CycleError]]:
    if not subs:
        return status, (), []
    specs = {s.name: job_plan(s, a, ctx) for s in subs}
    for spec in specs.values():  # SLURM does not create the directory of --output
        spec.log.parent.mkdir(parents=True, exist_ok=True)
    known = {step.job_name: step.job_id for _, _, step in status.steps()
             if step.job_name and step.job_id}
    errors: list[CycleError] = []
    crashpoint("before_sbatch")
    refusal: SubmitError | None = None
    try:
        # Both executors take `known` (name -> id of jobs submitted earlier, for `after`).
        ids = executor.submit(list(specs.values()), known=known)
    except SubmitError as exc:
        # What did go in before the refusal is recorded like any other submission.
        ids, refusal = exc.submitted, exc
        errors.append(_refused(a.name, exc, len(subs) - len(ids)))
    crashpoint("after_sbatch")
    transitions = []
    for sub in subs:
        old = status.step(sub.run, sub.key)
        job_id = ids.get(sub.name)
        if job_id is None:
            if refusal is None:
                continue
            if refusal.transient:  # nothing lost: pending, tried again after a back-off
                status = status.with_step(sub.run, sub.key,
                                          deferred(old, now, refusal.words[-500:],
                                                   a.site.slurm.submit_retry_s))
                continue
            new = old.moved(FAILED, now, reason=REASON_SUBMIT_FAILED,
                            message=str(refusal)[-500:], refusals=None, next_try=None)
        else:
            new = old.moved(SUBMITTED, now, job_id=job_id, job_name=sub.name,
                            attempt=sub.attempt,
                            submitted_from=plan_commit,
                            rendered_hash=run_files_hash(files, sub.run),
                            submitted=now, log=str(specs[sub.name].log),
                            message=None, reason=None, estimate=_planned(a, sub),
                            refusals=None, next_try=None)
        status = status.with_step(sub.run, sub.key, new)
        transitions.append(Transition(a.name, sub.run, sub.key, old.status, new.status, job_id,
                                      new.reason))
    return status, tuple(transitions), errors


def _refused(experiment: str, exc: SubmitError, left: int) -> CycleError:
    if exc.transient:
        return CycleError(experiment, records.SUBMIT_DEFERRED,
                          f"the scheduler refused {exc.job_name} for now: {exc.words}; "
                          f"{left} step(s) stay pending and are tried again after a back-off "
                          "(`tunegit status` shows when)")
    return CycleError(experiment, records.SUBMIT_REFUSED,
                      f"the scheduler refused {exc.job_name}: {exc.words}; {left} step(s) failed "
                      "(hint: fix the site file or the plan, then `tunegit retry`)")
