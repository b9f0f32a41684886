"""The check pipeline: load -> validate -> expand -> verify -> estimate, all errors in one pass."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tunegit.core import warmup
from tunegit.core.checks import Verification
from tunegit.core.estimate import PlanEstimate, estimate_plan
from tunegit.core.expand import Expansion, expand
from tunegit.core.validate import check_plan, check_structure
from tunegit.edges.priors import load_repo_priors, load_site_priors
from tunegit.edges.verify import verify
from tunegit.edges.workspace import LoadedPlan, Workspace
from tunegit.errors import PlanError, Problem
from tunegit.executors import backend
from tunegit.executors.base import Executor
from tunegit.render.plandoc import render_design_log, render_plan_md
from tunegit.spec import models
from tunegit.spec.site import Site
from tunegit.tools import EVALUATION, PREPARATION


@dataclasses.dataclass(frozen=True)
class Analysis:
    ws: Workspace
    loaded: LoadedPlan
    site: Site
    expansion: Expansion
    verification: Verification
    estimate: PlanEstimate
    warnings: tuple[Problem, ...]
    catalog: models.Catalog | None = None  # the shipped models under the lab's
    prior_runs: int = 0  # completed runs elsewhere in the repository the estimates drew on

    @property
    def name(self) -> str:
        return self.loaded.plan.name

    @property
    def plan_rel(self) -> str:
        return self.ws.rel(self.loaded.path)

    @property
    def work_dir(self) -> Path:
        return self.ws.work_dir(self.site, self.name)

    def plan_md(self) -> str:
        site_out = f"{self.site.output_dir.rstrip('/')}/{self.name}"
        site_file = self.ws.site_path(self.site.name)
        site_text = site_file.read_text(encoding="utf-8") if site_file.is_file() else ""
        return render_plan_md(self.loaded.plan, self.loaded.path.read_text(encoding="utf-8"),
                              self.plan_rel, self.site, self.expansion, self.estimate,
                              self.verification.datasets, site_out, site_text, self.prior_runs)

    def design_log(self, timestamp: str) -> str:
        return render_design_log(self.loaded.plan, self.expansion, self.verification.checks,
                                 self.estimate, timestamp)


def analyse(ws: Workspace, plan_path: Path, site_override: str | None = None) -> Analysis:
    loaded = ws.load_plan(plan_path)
    plan, doc = loaded.plan, loaded.located
    problems = check_structure(plan, doc)
    problems += _tools(loaded)
    site, catalog = None, None
    try:
        site = ws.load_site(site_override or plan.site, located_plan=doc)
    except PlanError as exc:
        problems += exc.problems
    try:
        catalog = ws.load_models()
    except PlanError as exc:
        problems += exc.problems
    if problems or site is None:
        raise PlanError(problems=problems)
    exp = expand(plan)
    findings = check_plan(plan, doc, exp, catalog)
    verification = verify(ws, plan, site, exp, doc, catalog)
    history = load_repo_priors(ws, exclude=plan.name)
    priors = load_site_priors(ws, site.name) + history
    est = estimate_plan(exp, site, priors, verification.datasets, queue_capacity(ws, site))
    errors = (list(findings.errors) + list(verification.errors) + _batch_fit(loaded, est)
              + _gpu_fit(loaded, site) + _time_fit(loaded, site))
    if errors:
        raise PlanError(problems=sorted(errors, key=lambda p: (p.line or 0, p.col or 0)))
    warnings = findings.warnings + verification.warnings + tuple(_warmup_fit(loaded, est,
                                                                              catalog))
    return Analysis(ws, loaded, site, exp, verification, est, warnings, catalog, len(history))


def queue_capacity(ws: Workspace, site: Site) -> int | None:
    """The jobs tunegit lets run (or be queued) at once on a site, across all experiments: its
    max_parallel where its executor has no scheduler of its own (the local executor: it does
    not enforce dependencies either), and at most its max_submitted; None: no limit (a
    scheduler, SLURM, queues them)."""
    return executor_capacity(backend(site.executor).create(site, ws), site)


def executor_capacity(executor: Executor, site: Site) -> int | None:
    """``queue_capacity`` for an executor already made (the reconcile loop's)."""
    caps = [site.max_submitted, None if executor.supports_dependencies else site.max_parallel]
    return min((c for c in caps if c is not None), default=None)


def _tools(loaded: LoadedPlan) -> list[Problem]:
    tools, doc = loaded.plan.tools, loaded.located
    out = []
    if tools.preparation not in PREPARATION:
        out.append(doc.problem(("tools", "preparation"), f"unknown tool {tools.preparation!r}",
                               hint="supported: " + ", ".join(sorted(PREPARATION))))
    if tools.evaluation not in EVALUATION:
        out.append(doc.problem(("tools", "evaluation"), f"unknown tool {tools.evaluation!r}",
                               hint="supported: " + ", ".join(sorted(EVALUATION))))
    return out


def _time_fit(loaded: LoadedPlan, site: Site) -> list[Problem]:
    """A plan's own time limit must be one the site allows (it is not cut down silently)."""
    most, out = site.slurm.time_limit_max_minutes, []
    for key, minutes in loaded.plan.time_limits.model_dump().items():
        if minutes is not None and minutes > most:
            out.append(loaded.located.problem(
                ("time_limits", key), f"{minutes} minutes, but site {site.name!r} allows at "
                f"most {most} per job", hint=f"use {key} <= {most}, or raise "
                f"slurm.time_limit_max_minutes in sites/{site.name}.yaml"))
    return out


def _gpu_fit(loaded: LoadedPlan, site: Site) -> list[Problem]:
    gpus = loaded.plan.training.gpus
    if gpus <= site.gpu.count:
        return []
    return [loaded.located.problem(
        ("training", "gpus"), f"{gpus} GPUs per job, but site {site.name!r} has {site.gpu.count}",
        hint=f"use gpus <= {site.gpu.count}, or a site with more GPUs (sites/{site.name}.yaml)")]


def _warmup_fit(loaded: LoadedPlan, est: PlanEstimate,
                catalog: models.Catalog | None) -> list[Problem]:
    """A run shorter than three times its warmup spends most of it warming up."""
    out = []
    for r in est.runs:
        t = r.run.training
        total = warmup.run_steps(r)
        info = models.lookup(r.run.model_id, catalog)
        test_model = bool(info and info.test_model)
        steps = warmup.warmup_steps(t.warmup_steps, total, test_model=test_model)
        if (total is None or r.is_control or (test_model and t.warmup_steps is None)
                or not warmup.too_short(steps, total)):
            continue  # (the tiny test model's own short warmup is not a lab's choice)
        field = ("training", "warmup_steps") if t.warmup_steps is not None else ("training",)
        out.append(loaded.located.problem(
            field, f"{r.name} has {total} optimizer steps and warms up for {steps}: most of "
            "the run at a reduced learning rate",
            hint=f"set training.warmup_steps to at most {max(1, total // warmup.TOO_SHORT)} "
            "(without it, a run warms up for 5% of its steps)"))
    return out


def _batch_fit(loaded: LoadedPlan, est: PlanEstimate) -> list[Problem]:
    out = []
    for r in est.runs:
        if r.is_control or r.max_batch_size is None or r.batch_size <= r.max_batch_size:
            continue
        out.append(loaded.located.problem(
            ("training", "batch_size"),
            f"batch size {r.batch_size} for {r.name} does not fit the site GPU "
            f"(estimated maximum {r.max_batch_size:.1f})",
            hint=f"use batch_size <= {int(r.max_batch_size)} for this model "
            "(per model: `batch_size: {MODEL: N, default: M}`)"))
    return out
