"""Results: one cell per run x task x epoch x scorer, with n, a 95% interval and, for a
fine-tuned run, the paired difference from its model's base control (pure); the plots of
them are ``tunegit.render.plots``.

Where the evaluation's per-sample scores were read (``samples``: the edge reads the eval
logs through the evaluation tool's contract), everything is computed from them
(``tunegit.core.stats``). Where they were not, the cell falls back on runs_status.yaml: the
recorded score and sample count, an accuracy's Wilson interval from score x n, and no
paired difference, each with a note that says why.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence

from tunegit.core.expand import FACTOR_LABELS, Evaluation, Expansion, Run, format_level
from tunegit.core.states import COMPLETED
from tunegit.core.stats import (
    Estimate,
    Interval,
    is_binary,
    mean_estimate,
    paired_difference,
    wilson,
)
from tunegit.core.status import StatusFile, Step

# scorer -> sample id -> value (a float: inspect's C/I read as 1/0), as a tool reads it
SampleTable = Mapping[str, Mapping[str, float]]
ACCURACY, MEAN = "accuracy", "mean"

NOTE_FROM_STATUS = ("interval from the score and n recorded in runs_status.yaml "
                    "(the eval log is not here)")
NOTE_NO_INTERVAL = ("no interval: it needs the eval log's per-sample scores (not here) or, "
                    "for an accuracy, the n runs_status.yaml records")
NOTE_NO_BASE_LOG = "no paired difference: it needs the per-sample scores of both runs"
NOTE_OTHER_DATA = "no paired difference: the base control was evaluated on other data"
NOTE_NO_SHARED = "no paired difference: the two evaluations share no sample id"


@dataclasses.dataclass(frozen=True)
class Cell:
    run: str
    task: str
    epoch: str  # "" for base-model controls
    scorer: str  # "" when nothing was scored
    metric: str  # ACCURACY (every sample 0 or 1), MEAN, or the metric runs_status.yaml names
    status: str
    score: float | None
    n: int | None
    interval: Interval | None
    base: str = ""  # the control run the difference is taken from
    diff: Estimate | None = None
    note: str = ""


def collect(exp: Expansion, status: StatusFile,
            samples: Mapping[tuple[str, str], SampleTable] | None = None) -> list[Cell]:
    """Every evaluation's cells, in plan order; ``samples`` is keyed by (run, eval key)."""
    samples = samples or {}
    out: list[Cell] = []
    for ev in exp.evaluations:
        record = status.runs.get(ev.run)
        step = record.evaluations.get(ev.key) if record else None
        table = samples.get((ev.run, ev.key))
        base = _base_evaluation(exp, ev)
        base_table = samples.get((base.run, base.key)) if base else None
        for scorer in _scorers(step, table):
            cell = _cell(ev, step, scorer, table)
            if base is not None and cell.score is not None:
                cell = _with_difference(cell, ev, base, table, base_table)
            out.append(cell)
    return out


def _scorers(step: Step | None, table: SampleTable | None) -> list[str]:
    if step is None or step.status != COMPLETED:
        return [""]
    if table:
        return list(table)
    return list(step.metrics or {}) or [""]


def _cell(ev: Evaluation, step: Step | None, scorer: str, table: SampleTable | None) -> Cell:
    epoch = "" if ev.epoch is None else str(ev.epoch)
    state = step.status if step else "unknown"
    empty = Cell(ev.run, ev.task, epoch, scorer, "", state, None, None, None)
    if step is None or step.status != COMPLETED:
        return empty
    values = list((table or {}).get(scorer, {}).values())
    est = mean_estimate(values)
    if est is not None:
        metric = ACCURACY if is_binary(values) else MEAN
        return dataclasses.replace(empty, metric=metric, score=est.value, n=est.n,
                                   interval=est.interval)
    metric, score = _recorded(step, scorer)
    n = step.samples
    interval = wilson(round(score * n), n) if (metric == ACCURACY and score is not None
                                                and n) else None
    note = NOTE_FROM_STATUS if interval else (NOTE_NO_INTERVAL if score is not None else "")
    return dataclasses.replace(empty, metric=metric, score=score, n=n, interval=interval,
                               note=note)


def _recorded(step: Step, scorer: str) -> tuple[str, float | None]:
    """A scorer's headline metric in runs_status.yaml: its accuracy, else its first metric."""
    metrics = (step.metrics or {}).get(scorer) if scorer else None
    if not isinstance(metrics, Mapping) or not metrics:
        return step.metric or "", step.score
    chosen = ACCURACY if ACCURACY in metrics else next(iter(metrics))
    value = metrics[chosen]
    return chosen, float(value) if isinstance(value, int | float) else None


def base_control(exp: Expansion, run: Run) -> Run | None:
    """The base-model control of a fine-tuned run's model; None for a control or no controls."""
    if run.is_control:
        return None
    return next((c for c in exp.controls if c.model == run.model), None)


def _base_evaluation(exp: Expansion, ev: Evaluation) -> Evaluation | None:
    control = base_control(exp, exp.run(ev.run))
    if control is None:
        return None
    return next((e for e in exp.evaluations_of(control.name) if e.task == ev.task), None)


def _with_difference(cell: Cell, ev: Evaluation, base: Evaluation, table: SampleTable | None,
                     base_table: SampleTable | None) -> Cell:
    with_base = dataclasses.replace(cell, base=base.run)
    if (ev.dataset, ev.split) != (base.dataset, base.split):
        return _noted(with_base, NOTE_OTHER_DATA)
    mine = (table or {}).get(cell.scorer)
    theirs = (base_table or {}).get(cell.scorer)
    if not mine or not theirs:
        return _noted(with_base, NOTE_NO_BASE_LOG)
    diff = paired_difference(mine, theirs)
    if diff is None:
        return _noted(with_base, NOTE_NO_SHARED)
    return dataclasses.replace(with_base, diff=diff)


def _noted(cell: Cell, note: str) -> Cell:
    return dataclasses.replace(cell, note=f"{cell.note}; {note}" if cell.note else note)


# --- text ------------------------------------------------------------------------------------

INTRO = ("Score: the mean over n samples, with its 95% interval (Wilson for accuracies, "
         "a bootstrap otherwise). Δ base: the mean per-sample difference from the model's "
         "base control on the same samples, with a 95% paired-bootstrap interval; an "
         "interval that contains 0 means the difference is not distinguishable from noise.")


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def fmt_interval(interval: Interval | None) -> str:
    return "-" if interval is None else f"[{interval.low:.3f}, {interval.high:.3f}]"


def notes(cells: Sequence[Cell]) -> list[str]:
    """The distinct notes, numbered in order of first appearance (1-based)."""
    return list(dict.fromkeys(part for c in cells if c.note for part in c.note.split("; ")))


def note_refs(cell: Cell, numbered: Sequence[str]) -> str:
    return ", ".join(str(numbered.index(p) + 1) for p in cell.note.split("; ")) if cell.note \
        else ""


def rows(cells: Sequence[Cell]) -> list[list[str]]:
    """The table as text cells: the markdown and the HTML report show the same."""
    numbered = notes(cells)
    return [[c.run, c.task, c.epoch or "base", c.scorer or "-", c.metric or "-", fmt(c.score),
             fmt_interval(c.interval), "-" if c.n is None else str(c.n),
             fmt(c.diff.value if c.diff else None, signed=True),
             fmt_interval(c.diff.interval if c.diff else None), c.status,
             note_refs(c, numbered)] for c in cells]


HEADER = ["Run", "Task", "Epoch", "Scorer", "Metric", "Score", "95% CI", "n", "Δ base",
          "Δ 95% CI", "Status", "Note"]


def markdown(cells: Sequence[Cell], title: str) -> str:
    lines = [f"# Results: {title}", "", INTRO, "",
             "| " + " | ".join(HEADER) + " |",
             "|" + "|".join("-" * (len(h) + 2) for h in HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(cells)]
    numbered = notes(cells)
    if numbered:
        lines += ["", "Notes:", ""] + [f"{i}. {n}" for i, n in enumerate(numbered, 1)]
    return "\n".join(lines) + "\n"


CSV_HEADER = ["run", "task", "epoch", "scorer", "metric", "score", "n", "ci_low", "ci_high",
              "ci_method", "base", "diff", "diff_n", "diff_low", "diff_high", "status", "note"]


def _num(value: float | None) -> str:
    return "" if value is None else repr(round(value, 6))


def to_csv(cells: Sequence[Cell]) -> str:
    """One row per cell, the intervals as columns."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for c in cells:
        ci, d = c.interval, c.diff
        di = d.interval if d else None
        writer.writerow([
            c.run, c.task, c.epoch, c.scorer, c.metric, _num(c.score),
            "" if c.n is None else c.n, _num(ci.low if ci else None),
            _num(ci.high if ci else None), ci.method if ci else "", c.base,
            _num(d.value if d else None), d.n if d else "", _num(di.low if di else None),
            _num(di.high if di else None), c.status, c.note])
    return buf.getvalue()


# --- the plot's layout -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Bar:
    label: str  # the x tick: the run's factor levels (and epoch), or `base`
    group: str  # the first varying factor's level; `base` for controls
    hue: str  # the other varying factors' levels ("" when only one varies)
    score: float
    interval: Interval | None
    control: bool


def varying_factors(exp: Expansion) -> list[str]:
    return [factor for factor, levels in exp.factor_levels if len(levels) > 1]


def _levels(run: Run, factors: Sequence[str]) -> list[str]:
    values = dict(run.factors)
    return [f"{FACTOR_LABELS.get(f, f)}={format_level(values[f])}" for f in factors
            if f in values]


def panels(exp: Expansion, cells: Sequence[Cell]) -> dict[str, list[Bar]]:
    """``task · scorer`` -> its bars: controls first, then fine-tuned cells grouped by the
    first varying factor (the plan's run order), the other factors as hue."""
    factors = varying_factors(exp)
    several_models = len({r.model for r in exp.runs}) > 1
    epochs: dict[tuple[str, str], set[str]] = {}
    for c in cells:
        epochs.setdefault((c.run, c.task), set()).add(c.epoch)
    out: dict[str, list[Bar]] = {}
    for c in sorted((c for c in cells if c.score is not None),
                    key=lambda c: not exp.run(c.run).is_control):
        run = exp.run(c.run)
        assert c.score is not None
        if run.is_control:
            label = f"{run.model} base" if several_models else "base"
            bar = Bar(label, "base", "", c.score, c.interval, True)
        else:
            levels = _levels(run, factors) or [run.name]
            label = ", ".join(levels)
            if len(epochs[(c.run, c.task)]) > 1:
                label += f", epoch {c.epoch}"
            bar = Bar(label, levels[0], ", ".join(levels[1:]), c.score, c.interval, False)
        title = f"{c.task} · {c.scorer}" if c.scorer else c.task
        out.setdefault(title, []).append(bar)
    return out
