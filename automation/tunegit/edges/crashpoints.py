"""Crash points: die like `kill -9` at a named step, for the crash-safety tests.

``TUNEGIT_CRASH_AT=<name>`` (or ``<name>@N``: at the N-th time that point is reached in
this process) makes ``crashpoint(name)`` kill the process with SIGKILL: no ``finally``,
no atexit, no flushed buffers, exactly what an OOM killer or a node reboot does. Unset
(always, outside tests), a crash point is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TUNEGIT_CRASH_AT"
# Every point, in the order one reconcile cycle reaches them (bench/RELIABILITY.md lists them).
POINTS = (
    "after_render",  # engine: scaffold files written, nothing observed yet
    "before_sbatch",  # engine: submissions decided, executor not called
    "after_sbatch",  # engine: the executor returned job ids, status not updated in memory
    "before_status_write",  # engine: the new status is ready, runs_status.yaml not written
    "after_status_write",  # engine: runs_status.yaml written, not committed
    "before_commit",  # watcher: the cycle is over, its status files are not committed
    "after_commit",  # watcher: committed, not pushed
    "before_push",  # gitstore: about to run `git push`
    "after_push",  # gitstore: pushed, the remote-tracking ref not updated
    "before_state_save",  # watcher: pushed, .git/tunegit-state.json not updated
)
_hits: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """SIGKILL this process if TUNEGIT_CRASH_AT names this point (and hit count)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
