"""`tunegit logs EXP/RUN[/EVAL] [-n LINES]`: the tail of one step's own log.

The step is the run's fine-tuning (``EXP/RUN`` or ``EXP/RUN/finetune``, the STEP column of
`tunegit status`) or one of its evaluations (``EXP/RUN/KEY``); its log is the file
runs_status.yaml records (``log``), where the job wrote its output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunegit.commands.common import workspace
from tunegit.core.status import StatusFile, Step
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.errors import TunegitError
from tunegit.files import read_status, tail_lines

DEFAULT_LINES = 40
FINETUNE = "finetune"  # the fine-tuning step's name in `tunegit status`


# --- pure ------------------------------------------------------------------------------------

def split_target(target: str) -> tuple[str, str, str | None]:
    """``EXP/RUN[/EVAL]`` -> (experiment, run, evaluation key or None for the fine-tuning)."""
    parts = target.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise TunegitError(f"{target!r}: expected EXP/RUN or EXP/RUN/EVAL",
                           hint="`tunegit status EXP` lists the runs and their steps")
    experiment, run = parts[0], parts[1]
    return experiment, run, parts[2] if len(parts) == 3 else None


def find_step(status: StatusFile, experiment: str, run: str, key: str | None) -> Step:
    """The step named by ``run`` and ``key`` (``finetune`` names the fine-tuning unless an
    evaluation has that key); errors list the valid names."""
    if run not in status.runs:
        raise TunegitError(f"no run {run!r} in {experiment}",
                           hint=f"runs: {', '.join(status.runs) or 'none'}")
    evaluations = status.runs[run].evaluations
    if key == FINETUNE and key not in evaluations:
        key = None
    if key is not None and key not in evaluations:
        names = ", ".join([FINETUNE, *evaluations])
        raise TunegitError(f"run {run} of {experiment} has no evaluation {key!r}",
                           hint=f"steps of {run}: {names}")
    return status.step(run, key)


def shown(target: str, step: Step, text: str) -> str:
    """The tail ``text`` of the step's log under a header naming the file, like `tail`'s."""
    count = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    job = f", job {step.job_id}" if step.job_id else ""
    what = f"last {count} line{'s' if count != 1 else ''}" if count else "empty"
    body = text if not text or text.endswith("\n") else text + "\n"
    return f"==> {step.log} ({target}: {step.status}{job}; {what}) <==\n{body}"


# --- I/O -------------------------------------------------------------------------------------

def _status(ws: Workspace, experiment: str) -> StatusFile:
    path = ws.experiment_dir(experiment) / STATUS_FILE
    status = read_status(path)
    if status is None:
        raise TunegitError(f"{ws.rel(path)} does not exist: nothing has run yet",
                           hint=f"`tunegit run {experiment}` runs it")
    return status


def _log_file(ws: Workspace, target: str, step: Step) -> Path:
    if not step.log:
        raise TunegitError(f"{target} has no log: it is {step.status} and never ran as a job",
                           hint=f"`tunegit status {target.split('/')[0]}` shows every step")
    path = Path(step.log)
    path = path if path.is_absolute() else ws.root / path
    if not path.is_file():
        raise TunegitError(f"{target}: its log {step.log} is not on this machine",
                           hint="it is where the job ran; run `tunegit logs` on that machine")
    return path


def main(args: argparse.Namespace) -> int:
    lines = DEFAULT_LINES if args.lines is None else args.lines
    if lines < 1:
        raise TunegitError(f"-n {lines}: must be at least 1",
                           hint=f"omit it for the last {DEFAULT_LINES} lines")
    ws = workspace(args)
    experiment, run, key = split_target(args.target)
    experiment = ws.resolve_experiment(experiment).parent.name  # unknown: lists the known
    step = find_step(_status(ws, experiment), experiment, run, key)
    path = _log_file(ws, args.target, step)
    sys.stdout.write(shown(args.target, step, tail_lines(path, lines)))
    return 0
