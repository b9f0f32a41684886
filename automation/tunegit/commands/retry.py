"""`tunegit retry EXP RUN [KEY]`: a failed, cancelled or blocked step gets a new attempt.

The old attempt's record (job id and name, state, reason, times) moves to the step's
``attempts``; the step becomes pending as attempt N+1, submitted under the job name
``tg:<exp>:<run>:<stage>:a<N+1>`` by the next `tunegit run` or watcher cycle. Retrying a
fine-tuning step re-opens its evaluations that did not run, so they chain on it again.
"""

from __future__ import annotations

import argparse

from tunegit.commands.common import out, workspace
from tunegit.commands.run import describe
from tunegit.core.reconcile import retry
from tunegit.core.status import dump
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import TunegitError
from tunegit.files import read_status, utc_now, write_if_changed

FINETUNE_KEYS = ("finetune", "ft")


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    name = ws.resolve_experiment(args.experiment).parent.name
    path = ws.experiment_dir(name) / STATUS_FILE
    status = read_status(path)
    if status is None:
        raise TunegitError(f"experiments/{name}/{STATUS_FILE} does not exist: nothing ran yet",
                           hint=f"`tunegit run {name}` starts the experiment")
    key = None if args.key in (None, *FINETUNE_KEYS) else args.key
    status, transitions = retry(status, name, args.run, key, utc_now())  # or a RetryError
    write_if_changed(path, dump(status))
    for t in transitions:
        step = status.step(t.run, t.key)
        out(f"{describe(t)} (attempt {step.attempt or 1})")
    out(f"`tunegit run {name}` (or the watcher) submits the new attempt")
    return 0
