"""`tunegit status [EXP]`: where each run and evaluation stands, from runs_status.yaml."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import textwrap
from collections.abc import Sequence

from tunegit.commands.common import workspace
from tunegit.core import status as status_mod
from tunegit.core.states import RUNNING, SUBMITTED
from tunegit.core.status import StatusFile, Step
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.errors import TunegitError
from tunegit.files import read_status

COLUMNS = ("RUN", "STEP", "STATE", "JOB", "ELAPSED", "SCORE", "REASON")
REASON_WIDTH = 60  # the REASON column (reason and message) wraps past this many characters


# --- pure ------------------------------------------------------------------------------------

def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def elapsed(step: Step, now: dt.datetime) -> str:
    seconds = step.elapsed_s
    start = _parse_time(step.started or step.submitted)
    if seconds is None and start is not None and step.status in (SUBMITTED, RUNNING):
        seconds = (now - start).total_seconds()
    if seconds is None:
        return ""
    # A start ahead of this clock (two machines' clocks disagree) shows 0, never "-1h 50m".
    m, s = divmod(max(0, int(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def rows(status: StatusFile, now: dt.datetime) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for run, key, step in status.steps():
        reason = " ".join(x for x in (step.reason, step.message) if x)
        score = "" if step.score is None else f"{step.score:.3f}"
        out.append((run, "finetune" if key is None else key, step.status, step.job_id or "",
                    elapsed(step, now), score, reason))
    return out


def wrap_reason(text: str) -> list[str]:
    """The REASON cell's lines: wrapped at REASON_WIDTH, a longer word (a path) kept whole."""
    return textwrap.wrap(text, REASON_WIDTH, break_long_words=False,
                         break_on_hyphens=False) or [""]


def table(lines: Sequence[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell; a long reason goes on under its own column."""
    all_rows = [COLUMNS, *lines]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(COLUMNS) - 1)]
    out = []
    for row in all_rows:
        for n, part in enumerate(wrap_reason(row[-1])):
            cells = row[:-1] if n == 0 else ("",) * len(widths)
            out.append("  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=True)),
                                  part]).rstrip())
    return "\n".join(out) + "\n"


def render(name: str, status: StatusFile, now: dt.datetime) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.counts().items()))
    commit = f" (plan {status.plan_commit[:10]})" if status.plan_commit else ""
    return f"{name}{commit}: {counts}\n" + table(rows(status, now))


# --- I/O -------------------------------------------------------------------------------------

def _one(ws: Workspace, name: str, now: dt.datetime) -> str:
    path = ws.experiment_dir(name) / STATUS_FILE
    try:
        status = read_status(path)
    except (status_mod.StatusFormatError, ValueError) as exc:
        raise TunegitError(f"{ws.rel(path)}: unreadable: {exc}",
                           hint=f"restore it from git: `git checkout -- {ws.rel(path)}`") from exc
    if status is None:
        return (f"{name}: no {STATUS_FILE} yet\n  hint: run `tunegit check --write "
                f"experiments/{name}` and commit it\n")
    return render(name, status, now)


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    if args.experiment:
        names = [ws.resolve_experiment(args.experiment).parent.name]
    else:
        names = ws.experiments()
    if not names:
        raise TunegitError("no experiments found", hint="`tunegit new NAME` starts one")
    now = dt.datetime.now(dt.UTC)
    sys.stdout.write("\n".join(_one(ws, n, now) for n in names))
    return 0
