"""`tunegit scaffold EXP [--site S] [--dry-run] [--force]`: render every per-run file."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter

from tunegit.commands.common import out, report_writes, warn, workspace
from tunegit.edges.analysis import analyse
from tunegit.edges.gitinfo import head_commit
from tunegit.edges.scaffold import (
    CONFLICT,
    apply_writes,
    plan_writes,
    render_context,
    render_files,
    scaffold_log,
)
from tunegit.files import write_if_changed


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    a = analyse(ws, ws.resolve_experiment(args.experiment), args.site)
    warn(a.warnings)
    ctx = render_context(a)
    files = render_files(ctx, a.expansion.runs, a.expansion.evaluations, head_commit(ws.root))
    actions = plan_writes(a.work_dir, files, force=args.force)
    summary = report_writes(actions, show_identical=args.dry_run)
    counts = Counter(x.action for x in actions)
    if args.dry_run:
        out(f"dry run: {summary}; nothing written under {a.work_dir}")
    else:
        writable = [x for x in actions if x.action != CONFLICT]
        apply_writes(a.work_dir, files, writable)
        if any(x.action in ("create", "update") for x in actions):
            stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            log = a.work_dir / "scaffold-experiment.log"
            old = log.read_text(encoding="utf-8") if log.is_file() else ""
            write_if_changed(log, old + scaffold_log(a, actions, stamp))
        out(f"{summary} under {a.work_dir}")
    if counts.get(CONFLICT):
        out(
            f"{counts[CONFLICT]} file(s) changed by hand were left alone: review them, or rerun "
            "with --force to overwrite"
        )
        return 1
    return 0
