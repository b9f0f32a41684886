"""`tunegit retry EXP RUN [KEY]`: ask for a new attempt of a failed, cancelled or blocked step.

The request goes into experiments/EXP/retry.yaml, to be committed and reviewed like any
plan change; runs_status.yaml is not touched (only the watcher writes it). After the
merge the watcher applies the request once: the old attempt's record (job id and name,
state, reason, times) moves to the step's ``attempts``, and the step becomes pending as
attempt N+1 under the job name ``tg:<exp>:<run>:<stage>:a<N+1>``, with who asked and why
recorded on it. Retrying a fine-tuning step re-opens its evaluations that did not run.
Without a watcher, `tunegit run EXP` applies the request the same way.
"""

from __future__ import annotations

import argparse

from tunegit.commands.common import out, workspace
from tunegit.core.reconcile import retry
from tunegit.core.retry import next_attempt
from tunegit.edges import retry_requests
from tunegit.edges.workspace import STATUS_FILE
from tunegit.errors import TunegitError
from tunegit.files import read_status, utc_now
from tunegit.spec.retry import RETRY_FILE, RetryRequest

FINETUNE_KEYS = ("finetune", "ft")


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    name = ws.resolve_experiment(args.experiment).parent.name
    status = read_status(ws.experiment_dir(name) / STATUS_FILE)
    if status is None:
        raise TunegitError(f"experiments/{name}/{STATUS_FILE} does not exist: nothing ran yet",
                           hint=f"`tunegit run {name}` starts the experiment")
    key = None if args.key in (None, *FINETUNE_KEYS) else args.key
    retry(status, name, args.run, key, utc_now())  # only to refuse what cannot be retried
    step = status.step(args.run, key)
    attempt = next_attempt(step)
    said = f"attempt {step.attempt or 1} {step.status}" + (f" ({step.reason})" if step.reason
                                                           else "")
    request = RetryRequest(run=args.run, eval=key, attempt=attempt,
                           reason=(args.reason or "").strip() or said)
    existing, _ = retry_requests.load(ws, name)
    rel = f"experiments/{name}/{RETRY_FILE}"
    if any(r.id == request.id for r in existing):
        out(f"{rel} already asks for attempt {attempt} of {request.step}")
    else:
        retry_requests.add(ws, name, request)
        out(f"{rel}: asks for attempt {attempt} of {request.step} ({said})")
    out(f"commit it and open a pull request; once merged, the watcher starts attempt "
        f"{attempt} (without a watcher, `tunegit run {name}` does)")
    return 0
