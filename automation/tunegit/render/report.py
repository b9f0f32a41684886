"""The report of an experiment as one self-contained HTML page (pure: values in, text out).

Sections: the plan (question, factors, runs, evaluations), estimates against what the runs
measured, every step's status with its job id and reason, the results with their intervals,
and the plots, embedded as ``data:`` URIs so the page opens anywhere without its folder.
No external CSS, script or font. Every value is escaped by the template (``report.html.j2``
autoescapes), so plan text cannot become markup.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tunegit.core import results
from tunegit.core.expand import Expansion, Run, format_level
from tunegit.core.status import StatusFile, Step
from tunegit.render.templating import render_template
from tunegit.spec.plan import Plan

TEMPLATE = "report.html.j2"
FINETUNE = "finetune"


@dataclasses.dataclass(frozen=True)
class Planned:
    """What was estimated for one run, and where the figure comes from."""

    train_minutes: float | None
    eval_minutes: float | None
    source: str


@dataclasses.dataclass(frozen=True)
class Image:
    name: str  # the file it also is, e.g. results.png
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(measured: float | None, planned: float | None) -> str:
    if measured is None or not planned:
        return "-"
    return f"{measured / planned:.2f}x"


def _measured_eval_minutes(steps: Sequence[Step]) -> float | None:
    seconds = [s.elapsed_s for s in steps if s.elapsed_s is not None]
    return sum(seconds) / 60 if seconds else None


def estimate_rows(exp: Expansion, status: StatusFile,
                  planned: Mapping[str, Planned]) -> list[list[str]]:
    """Run, estimated and measured training minutes and their ratio, the same for its
    evaluations (all of them together), and where the estimate comes from."""
    rows = []
    for run in exp.runs:
        record = status.runs.get(run.name)
        plan = planned.get(run.name, Planned(None, None, ""))
        train = (record.finetune.elapsed_s / 60 if record and not run.is_control
                 and record.finetune.elapsed_s is not None else None)
        evals = _measured_eval_minutes(list(record.evaluations.values())) if record else None
        rows.append([run.name, "-" if run.is_control else _minutes(plan.train_minutes),
                     "-" if run.is_control else _minutes(train),
                     "-" if run.is_control else _ratio(train, plan.train_minutes),
                     _minutes(plan.eval_minutes), _minutes(evals),
                     _ratio(evals, plan.eval_minutes), plan.source or "-"])
    return rows


def _elapsed(step: Step) -> str:
    return "-" if step.elapsed_s is None else f"{step.elapsed_s:.0f} s"


def status_rows(status: StatusFile) -> list[list[str]]:
    """Every step: run, step, state, job id, attempt, elapsed, reason, message or note."""
    return [[run, FINETUNE if key is None else key, step.status, step.job_id or "-",
             str(step.attempt or 1), _elapsed(step), step.reason or "-",
             step.message or step.note or ""]
            for run, key, step in status.steps()]


def _levels(run: Run) -> str:
    return ", ".join(f"{k}={format_level(v)}" for k, v in run.factors) or "-"


def run_rows(exp: Expansion) -> list[list[str]]:
    """Run, model, factor levels, epochs, and what is evaluated."""
    return [[run.name, run.model, _levels(run),
             "base model (not trained)" if run.is_control else str(run.epochs),
             ", ".join(e.key for e in exp.evaluations_of(run.name))] for run in exp.runs]


def _plan_section(plan: Plan, exp: Expansion) -> dict[str, Any]:
    return {
        "question": plan.question, "type": plan.type, "site": plan.site,
        "models": ", ".join(plan.models), "dataset": plan.dataset.path,
        "factors": [[name, ", ".join(format_level(v) for v in levels)]
                    for name, levels in exp.factor_levels],
        "controls": "yes: one base-model run per model" if plan.controls else "no",
        "runs": run_rows(exp),
        "tasks": [[t.name, t.script, t.dataset, t.split, t.description or ""]
                  for t in plan.evaluation.tasks],
        "epochs": (", ".join(map(str, plan.evaluation.epochs))
                   if isinstance(plan.evaluation.epochs, list) else plan.evaluation.epochs),
        "notes": plan.notes, "author": plan.author,
    }


def report_html(plan: Plan, plan_path: str, exp: Expansion, status: StatusFile,
                cells: Sequence[results.Cell], planned: Mapping[str, Planned],
                images: Sequence[Image], problems: Sequence[str] = ()) -> str:
    counts = status.counts()
    return render_template(
        TEMPLATE, experiment=plan.name, plan_path=plan_path, plan_commit=status.plan_commit or "",
        plan=_plan_section(plan, exp),
        estimates=estimate_rows(exp, status, planned),
        counts=", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
        steps=status_rows(status),
        results_intro=results.INTRO, results_header=results.HEADER,
        results_rows=results.rows(cells), notes=results.notes(cells),
        images=list(images), problems=list(problems))
