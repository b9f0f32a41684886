"""An experiment's results files, next to its plan: results.md, results.csv, results.png
and loss.png.

Laid out as read, compute, render, write:

1. ``gather`` reads what the runs left where runs_status.yaml says they are, through the
   tools' contracts (never a backend by name): each completed evaluation's per-sample
   scores (``read_sample_scores`` on its recorded output) and each fine-tuned run's loss
   curve (``loss_curve`` on its job log and output directory). What is not on this machine
   is left out: the cells fall back on runs_status.yaml and say so;
2. ``tunegit.core.results`` computes the cells (pure), ``tunegit.render.plots`` the PNGs;
3. ``write_results`` writes the files whose bytes changed (atomic replace), so the watcher
   can call it every time an evaluation completes and commit what it returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from tunegit.core import results
from tunegit.core.expand import Expansion, expand
from tunegit.core.logparse import LossCurve
from tunegit.core.states import COMPLETED
from tunegit.core.status import StatusFile
from tunegit.edges.harvest import JOB_LOG_BYTES
from tunegit.errors import TunegitError
from tunegit.files import tail, write_if_changed
from tunegit.render.plots import loss_png, results_png
from tunegit.spec.plan import Plan
from tunegit.tools import get_evaluation, get_preparation

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
RESULTS_PNG = "results.png"
LOSS_PNG = "loss.png"
RESULTS_FILES = (RESULTS_MD, RESULTS_CSV, RESULTS_PNG, LOSS_PNG)
REPORT_FILE = "report.html"  # `tunegit report`: written on request, never by the watcher


@dataclasses.dataclass(frozen=True)
class Gathered:
    expansion: Expansion
    cells: tuple[results.Cell, ...]
    curves: Mapping[str, LossCurve]  # fine-tuned run -> its loss curve, where its logs are
    problems: tuple[str, ...]  # what could not be read here (each once)


def gather(plan: Plan, status: StatusFile) -> Gathered:
    exp = expand(plan)
    samples, problems = _sample_scores(plan, exp, status)
    cells = results.collect(exp, status, samples)
    return Gathered(exp, tuple(cells), _curves(plan, exp, status), tuple(problems))


def _sample_scores(plan: Plan, exp: Expansion, status: StatusFile,
                   ) -> tuple[dict[tuple[str, str], results.SampleTable], list[str]]:
    tool = get_evaluation(plan.tools.evaluation)
    found: dict[tuple[str, str], results.SampleTable] = {}
    for ev in exp.evaluations:
        record = status.runs.get(ev.run)
        step = record.evaluations.get(ev.key) if record else None
        if step is None or step.status != COMPLETED or not step.output:
            continue
        try:
            table = tool.read_sample_scores(step.output)
        except TunegitError as exc:  # the tool is not installed here: no log can be read
            return found, [f"per-sample scores not read: {exc.format()}"]
        if table:
            found[(ev.run, ev.key)] = table
    return found, []


def _curves(plan: Plan, exp: Expansion, status: StatusFile) -> dict[str, LossCurve]:
    tool = get_preparation(plan.tools.preparation)
    curves = {}
    for run in exp.finetuned:
        record = status.runs.get(run.name)
        step = record.finetune if record else None
        if step is None or not (step.log or step.output):
            continue
        log_text = tail(Path(step.log), JOB_LOG_BYTES) if step.log else ""
        curve = tool.loss_curve(log_text, step.output or "")
        if not run.validation:
            curve = LossCurve(curve.steps)
        if curve.steps or curve.validation:
            curves[run.name] = curve
    return curves


def render_files(plan: Plan, gathered: Gathered) -> dict[str, str | bytes]:
    """{file name in the experiment directory: text or PNG bytes}; a PNG is left out when
    matplotlib is missing, loss.png also when no run has a training log here."""
    cells = gathered.cells
    files: dict[str, str | bytes] = {RESULTS_MD: results.markdown(cells, plan.name),
                                     RESULTS_CSV: results.to_csv(cells)}
    metrics = {c.metric for c in cells if c.score is not None}
    png = results_png(results.panels(gathered.expansion, cells), plan.name,
                      metric=metrics.pop() if len(metrics) == 1 else "score")
    if png is not None:
        files[RESULTS_PNG] = png
    loss = loss_png(gathered.curves, plan.name) if gathered.curves else None
    if loss is not None:
        files[LOSS_PNG] = loss
    return files


def results_files(plan: Plan, status: StatusFile) -> dict[str, str | bytes]:
    """What ``write_results`` writes, without writing it."""
    return render_files(plan, gather(plan, status))


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> list[str]:
    """Write each file into ``directory`` when its bytes changed; the names written."""
    return [name for name, content in files.items()
            if write_if_changed(directory / name, content)]


def write_results(directory: Path, plan: Plan, status: StatusFile) -> list[str]:
    """Write results.md, results.csv, results.png and loss.png into the experiment
    directory ``directory`` (each only when its bytes changed); the names written."""
    return write_files(directory, results_files(plan, status))
