"""Results: scores per run x task x epoch from runs_status.yaml, as tables (pure); the plot
of them is ``tunegit.render.plots``."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import defaultdict
from collections.abc import Sequence

from tunegit.core.expand import Expansion, format_level
from tunegit.core.status import StatusFile


@dataclasses.dataclass(frozen=True)
class Score:
    run: str
    task: str
    epoch: str  # "" for base-model controls
    status: str
    score: float | None
    metric: str


def collect(exp: Expansion, status: StatusFile) -> list[Score]:
    out = []
    for ev in exp.evaluations:
        record = status.runs.get(ev.run)
        step = record.evaluations.get(ev.key) if record else None
        out.append(
            Score(
                ev.run,
                ev.task,
                "" if ev.epoch is None else str(ev.epoch),
                step.status if step else "unknown",
                step.score if step else None,
                (step.metric or "") if step else "",
            )
        )
    return out


def _cell(s: Score) -> str:
    return f"{s.score:.3f}" if s.score is not None else s.status


def markdown(scores: Sequence[Score], title: str) -> str:
    lines = [
        f"# Results: {title}",
        "",
        "| Run | Task | Epoch | Score | Metric | Status |",
        "|-----|------|-------|-------|--------|--------|",
    ]
    for s in scores:
        lines.append(
            f"| {s.run} | {s.task} | {s.epoch or 'base'} | {_cell(s)} | {s.metric or '-'} "
            f"| {s.status} |"
        )
    return "\n".join(lines) + "\n"


def to_csv(scores: Sequence[Score]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "task", "epoch", "score", "metric", "status"])
    for s in scores:
        writer.writerow(
            [s.run, s.task, s.epoch, "" if s.score is None else s.score, s.metric, s.status]
        )
    return buf.getvalue()


def by_factor(exp: Expansion, scores: Sequence[Score]) -> dict[str, dict[str, list[float]]]:
    """Factor -> level -> scores of fine-tuned runs at that level (controls under `base`)."""
    runs = {r.name: r for r in exp.runs}
    out: dict[str, dict[str, list[float]]] = {}
    for factor, levels in exp.factor_levels:
        if len(levels) < 2:
            continue
        table: dict[str, list[float]] = defaultdict(list)
        for s in scores:
            if s.score is None:
                continue
            run = runs[s.run]
            if run.is_control:
                table["base"].append(s.score)
                continue
            level = dict(run.factors).get(factor)
            if level is not None:
                table[format_level(level)].append(s.score)
        if table:
            out[factor] = dict(table)
    return out
