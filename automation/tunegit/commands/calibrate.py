"""`tunegit calibrate`: the error distribution of past estimates, per model and GPU."""

from __future__ import annotations

import argparse
import json

from tunegit.commands.common import out, workspace
from tunegit.edges.calibration import (
    Group,
    accuracy_sentence,
    held_out,
    held_out_summary,
    load_pairs,
    summarise,
)


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    pairs = load_pairs(ws)
    groups = summarise(pairs)
    rows = held_out(ws)
    if args.json:
        print(json.dumps({"groups": [g.__dict__ for g in groups],
                          "pairs": [{**p.__dict__, "ape": round(p.ape, 4)} for p in pairs],
                          "held_out": [{**r.__dict__, "history_ape": round(r.history_ape, 4),
                                        "fallback_ape": round(r.fallback_ape, 4)}
                                       for r in rows]},
                         indent=2))
        return 0
    if groups:
        _print_groups(groups)
    else:
        out("no completed runs with both an estimate and a measurement yet")
    if rows:
        out(held_out_summary(rows))
    return 0


def _print_groups(groups: list[Group]) -> None:
    out(f"{'model':<28} {'GPU':<12} {'runs':>5} {'median err':>11} {'worst err':>10}  worst run")
    for g in groups:
        out(f"{g.model:<28} {g.gpu_type:<12} {g.runs:>5} {g.median_ape:>11.0%} "
            f"{g.worst_ape:>10.0%}  {g.worst_run}")
    out(accuracy_sentence(groups))
