"""`tunegit estimate EXP [--json]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunegit.commands.common import out, warn, workspace
from tunegit.core.estimate import PlanEstimate, Span
from tunegit.edges.analysis import analyse
from tunegit.render.plandoc import minutes, scenario_label


def _span(s: Span) -> dict[str, float]:
    return {"low": round(s.low, 2), "high": round(s.high, 2)}


def as_json(est: PlanEstimate) -> dict[str, Any]:
    runs: list[dict[str, Any]] = [{
        "name": r.name, "train_minutes": round(r.train_minutes.value, 2),
        "eval_minutes": round(r.eval_minutes.value, 2), "gpu_hours": round(r.gpu_hours, 3),
        "disk_gib": round(r.disk_gib, 3), "batch_size": r.batch_size, "source": r.source,
        "control": r.is_control, "evaluations": r.evaluations, "preliminary": r.preliminary,
        "train_minutes_range": _span(r.train_minutes), "eval_minutes_range": _span(r.eval_minutes),
        "max_batch_size": None if r.max_batch_size is None else round(r.max_batch_size, 1),
        "it_per_s": r.it_per_s, "steps_per_epoch": r.steps_per_epoch, "device": r.device,
    } for r in est.runs]
    # Totals are the sums of the rounded per-run figures, so a reader's own sum agrees exactly.
    totals: dict[str, Any] = {
        key: round(sum(r[key] for r in runs), digits)
        for key, digits in (("train_minutes", 2), ("eval_minutes", 2), ("gpu_hours", 3),
                            ("disk_gib", 3))
    }
    totals.update({
        "train_minutes_range": _span(est.train_minutes),
        "eval_minutes_range": _span(est.eval_minutes),
        "scenarios": {s.name: {"jobs": s.jobs, "gpus": s.gpus,
                               "train_minutes": round(s.train_minutes, 2),
                               "eval_minutes": round(s.eval_minutes, 2)} for s in est.scenarios},
        "preliminary": est.preliminary,
    })
    # `gpu_hours` keeps its name for compatibility; on a CPU site ("device": "cpu") the
    # figures are CPU-hours.
    return {"device": est.device, "hours_unit": _unit(est) + "-hours", "runs": runs,
            "totals": totals}


def _unit(est: PlanEstimate) -> str:
    return "CPU" if est.device == "cpu" else "GPU"


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    given = (Path(args.root) if args.root else Path.cwd()) / args.experiment
    analysis = analyse(ws, ws.resolve_experiment(str(given) if given.exists() else args.experiment))
    est = analysis.estimate
    if args.json:
        print(json.dumps(as_json(est), indent=2))
        return 0
    warn(analysis.warnings)
    unit = _unit(est)
    out(f"{'run':<40} {'train':>9} {'eval':>9} {unit + '-h':>7} {'disk GiB':>9} {'batch':>6}  "
        "source")
    for r in est.runs:
        out(f"{r.name:<40} {minutes(r.train_minutes.value):>9} {minutes(r.eval_minutes.value):>9} "
            f"{r.gpu_hours:>7.2f} {r.disk_gib:>9.2f} {r.batch_size:>6}  {r.source}")
    out(f"{'total':<40} {minutes(est.train_minutes.value):>9} {minutes(est.eval_minutes.value):>9} "
        f"{est.gpu_hours:>7.2f} {est.disk_gib:>9.2f}")
    for s in est.scenarios:
        out(f"  {scenario_label(s)}: {minutes(s.total_minutes)} wall-clock")
    if est.device == "cpu":
        out("  on this CPU site the hours are CPU-hours, not GPU-hours")
    if est.preliminary:
        out("  some figures come from fallback tables: preliminary")
    return 0
