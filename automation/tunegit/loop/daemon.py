"""The watcher as a daemon: a cycle on a timer, and at once when woken.

What wakes it: a touch of the wake file in the checkout's git directory (a post-receive
hook or a webhook receiver, when the protected branch moves), and the files each site's
executor writes when a job ends (``wake_files`` of its backend). Nothing else: its own
fetches, commits and status writes change .git/ and the checkout on every cycle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import git

from tunegit.edges.gitstore import GitStore
from tunegit.edges.workspace import Workspace
from tunegit.errors import TunegitError
from tunegit.executors import ExecutorFactory, backend
from tunegit.loop.cycle import STATE_FILE, WatchConfig, WatchState, reconcile_once

# In the checkout's git directory: a post-receive hook or a webhook receiver touches it when
# the branch moves, to start a cycle now.
WAKE_FILE = "tunegit-wake"
WAKE_EVENTS = ("created", "modified", "attrib", "closed", "moved")  # not opened or deleted
SETTLE_S = 0.2  # one write makes several events (created, modified, closed): one wake
BRANCH, JOB = "branch", "job"  # what woke the watcher


@dataclasses.dataclass(frozen=True)
class Watched:
    """A directory the daemon watches, and the file in it whose writing wakes it."""

    directory: Path
    recursive: bool  # the file anywhere under the directory, or directly in it
    name: str
    kind: str  # BRANCH or JOB

    def matches(self, path: Path) -> bool:
        if path.name != self.name:
            return False
        return path.is_relative_to(self.directory) if self.recursive else (
            path.parent == self.directory)


class _Wake:
    """watchdog handler: a touch of the wake file (BRANCH), or a job's end (JOB), sets the
    event and says which.

    Nothing else wakes the watcher: its own fetch, commits and status writes change .git/
    and the checkout on every cycle, and a wake on those would turn `--interval` into a
    `--min-gap` poll loop.
    """

    def __init__(self, event: threading.Event, watched: Sequence[Watched]):
        self.event = event
        self.watched = tuple(watched)
        self.kinds: set[str] = set()

    def dispatch(self, ev: Any) -> None:
        if ev.event_type not in WAKE_EVENTS:
            return
        path = ev.dest_path if ev.event_type == "moved" else ev.src_path
        where = Path(path.decode() if isinstance(path, bytes) else str(path))
        kinds = {w.kind for w in self.watched if w.matches(where)}
        if kinds:
            self.kinds |= kinds
            self.event.set()

    def take(self) -> set[str]:
        """What woke the watcher since the last call (clears the event)."""
        self.event.clear()
        kinds, self.kinds = self.kinds, set()
        return kinds


def watch_paths(ws: Workspace, git_dir: Path) -> list[Watched]:
    """The git directory (for the wake file), and the files each site's executor writes when
    a job ends (a job's end starts the next step without waiting for the timer). An executor
    that names none is polled on the timer only."""
    watched = [Watched(git_dir, False, WAKE_FILE, BRANCH)]
    for name in ws.sites():
        try:
            site = ws.load_site(name)
            wake_files = backend(site.executor).wake_files(site, ws)
        except TunegitError:
            continue  # the cycle reports what is wrong with the site
        for wake in wake_files:
            with contextlib.suppress(OSError):
                wake.directory.mkdir(parents=True, exist_ok=True)
            entry = Watched(wake.directory, True, wake.name, JOB)
            if wake.directory.is_dir() and entry not in watched:
                watched.append(entry)
    return watched


def branch_news(store: GitStore) -> bool:
    """Whether the remote branch holds what no cycle acted on yet. The watcher's own push runs
    the same post-receive hook as a merge: a wake whose remote tip is the commit last fetched
    or pushed, with only status commits above the last reconciled one, is its own."""
    tip = store.remote_tip()
    if tip is None or tip != store.rev(store.remote_ref):
        return True
    reconciled = WatchState.load(store.git_dir / STATE_FILE).reconciled
    try:
        return store.changed_experiments(reconciled, tip) != set()
    except git.GitCommandError:
        return True  # cannot tell: a cycle finds out (and reports what is wrong)


def watch(config: WatchConfig, *, interval_s: float, min_gap_s: float, stop: threading.Event,
          wake: threading.Event, log: Callable[[str], None],
          executor_for: ExecutorFactory | None = None) -> None:
    """Reconcile every ``interval_s``, and at once (at most every ``min_gap_s``) when the wake
    file is touched or a job ends, until ``stop`` is set."""
    from watchdog.observers import Observer

    store = GitStore(config.root, remote=config.remote, branch=config.branch)
    observer = Observer()
    watched = watch_paths(Workspace(config.root), store.git_dir)
    handler = _Wake(wake, watched)
    for directory, recursive in dict.fromkeys((w.directory, w.recursive) for w in watched):
        observer.schedule(handler, str(directory), recursive=recursive)  # type: ignore[arg-type]
    observer.start()
    timer = True  # the first cycle
    try:
        while not stop.is_set():
            kinds = handler.take()
            if timer or JOB in kinds or (BRANCH in kinds and branch_news(store)):
                try:
                    log(reconcile_once(config, executor_for=executor_for).summary())
                except TunegitError as exc:
                    log(f"error: {exc.format()}")
                stop.wait(min_gap_s)
            timer = not wake.wait(interval_s)
            if not timer:
                stop.wait(SETTLE_S)  # the other events of the same write land before take()
    finally:
        observer.stop()
        observer.join(timeout=5)
