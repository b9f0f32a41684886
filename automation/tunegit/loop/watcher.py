"""The watcher: follow the protected branch, reconcile, commit status, push.

One cycle (`reconcile_once`), for cron, scrontab or the `watch` daemon:

1. lock the checkout (a second watcher on it exits quietly);
2. commit status files a crashed cycle wrote but did not commit (never lose one);
3. fetch the protected branch only and fast-forward (own unpushed commits replay);
4. pick experiments that human commits changed since the last reconciled commit, or that
   had live jobs or work left after the last cycle (the saved state: an idle cycle reads
   no status file);
5. `engine.cycle(...)` with plan_commit = the newest human commit on the branch;
6. at most one commit for the status files written, then push (rebase and retry);
7. record the reconciled commit in .git/tunegit-state.json.

Trust: only the protected branch is fetched and acted on. An experiment whose site sets
`require_signed_commits: true` is reconciled only when the commit whose tree the watcher
runs (the plan commit) carries a valid signature (`git verify-commit`, with the keys of
the checkout's git config, e.g. `gpg.ssh.allowedSignersFile`), and every commit above it
is a status commit that touches runs_status.yaml files only (a forged trailer on a commit
that changes anything else is refused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import git

from tunegit.loop import engine
from tunegit.core import status as status_mod
from tunegit.edges.crashpoints import crashpoint
from tunegit.errors import TunegitError
from tunegit.edges.gitstore import GitStore, GitStoreError, PushResult, status_message
from tunegit.core.records import CycleResult
from tunegit.core.states import LIVE_STATES, PENDING
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.files import read_status, utc_now, write_if_changed

STATE_FILE = "tunegit-state.json"
LOCK_FILE = "tunegit.lock"

CycleFn = Callable[..., CycleResult]
ExecutorFor = Callable[[Workspace], engine.ExecutorFactory]


@dataclasses.dataclass(frozen=True)
class WatchConfig:
    root: Path
    remote: str = "origin"
    branch: str = "main"
    push_attempts: int = 5
    backoff_s: float = 1.0


@dataclasses.dataclass(frozen=True)
class WatchState:
    """What the last cycle left behind (in .git/, never committed)."""

    reconciled: str | None = None  # the protected branch tip last acted on
    active: tuple[str, ...] = ()  # experiments with work left after the last cycle

    @classmethod
    def load(cls, path: Path) -> WatchState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        return cls(data.get("reconciled"), tuple(data.get("active") or ()))

    def save(self, path: Path) -> None:
        text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"
        write_if_changed(path, text)


@dataclasses.dataclass(frozen=True)
class CycleReport:
    plan_commit: str
    experiments: tuple[str, ...]
    transitions: int = 0
    commit: str | None = None
    push: PushResult | None = None
    errors: tuple[str, ...] = ()
    live: int = 0
    pending: int = 0
    skipped: str = ""  # why nothing ran (another watcher holds the lock)

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        head = f"{self.plan_commit[:10]}: "
        if not self.experiments:
            return head + "nothing to reconcile"
        text = (f"{len(self.experiments)} experiment(s), {self.transitions} transition(s), "
                f"{self.live} live, {self.pending} pending")
        if self.commit:
            text += f"; committed {self.commit[:10]}"
        if self.push is not None and not self.push.pushed:
            text += f"; push failed after {self.push.attempts} attempt(s), kept local: " \
                    f"{self.push.error}"
        return head + text


# --- pure: which experiments ------------------------------------------------------------------

def has_work(status: status_mod.StatusFile | None, *, pending: bool) -> bool:
    if status is None:
        return pending
    states = {step.status for _, _, step in status.steps()}
    return bool(states & LIVE_STATES) or (pending and PENDING in states)


def select(all_names: Sequence[str], changed: set[str] | None, recovered: set[str],
           active: Sequence[str]) -> tuple[str, ...]:
    """Changed (None: everything), recovered from a crash, or with work left last cycle;
    only existing plans."""
    wanted = set(all_names) if changed is None else changed | recovered | set(active)
    return tuple(n for n in all_names if n in wanted)


# --- I/O --------------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(git_dir: Path) -> Iterator[bool]:
    """A non-blocking exclusive lock on the checkout: yields False when another holds it."""
    with (git_dir / LOCK_FILE).open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _status_of(ws: Workspace, name: str) -> status_mod.StatusFile | None:
    try:
        return read_status(ws.experiment_dir(name) / STATUS_FILE)
    except (status_mod.StatusFormatError, ValueError):
        return None


def recover(store: GitStore) -> list[str]:
    """Commit status files a crashed cycle wrote but did not commit; refuse anything else.

    Returns the experiments whose files it committed (the next cycle looks at them again)."""
    dirty = store.dirty_paths()
    if not dirty or not all(Path(p).name == STATUS_FILE for p in dirty):
        return []  # clean, or a human's change: sync() refuses it with the way out
    names = [p.split("/")[1] for p in dirty if p.startswith("experiments/")]
    store.commit(dirty, status_message([], None, names))
    return names


def reconcile_once(config: WatchConfig, *, executor_for: engine.ExecutorFactory | None = None,
                   now: Callable[[], str] = utc_now, cycle: CycleFn | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> CycleReport:
    store = GitStore(config.root, remote=config.remote, branch=config.branch,
                     attempts=config.push_attempts, backoff_s=config.backoff_s, sleep=sleep)
    with locked(store.git_dir) as ok:
        if not ok:
            return CycleReport("", (), skipped="another reconcile holds the lock; skipped")
        try:
            return _cycle(store, executor_for, now, cycle or engine.cycle)
        except git.GitCommandError as exc:  # any git failure is a clear stop, never a traceback
            raise GitStoreError(f"{store.root}: `git {_subcommand(exc)}` failed: "
                                f"{_stderr_text(exc)}",
                                hint="nothing was pushed by this cycle; fix the checkout, and "
                                "the next cycle retries (status already written is kept)"
                                ) from exc


def _subcommand(exc: git.GitCommandError) -> str:
    argv = exc.command if isinstance(exc.command, list) else str(exc.command).split()
    return " ".join(str(a) for a in argv[1:3])


def _stderr_text(exc: git.GitCommandError) -> str:
    text = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
    return text.strip().removeprefix("stderr:").strip().strip("'").strip() or str(exc)


def _cycle(store: GitStore, executor_for: engine.ExecutorFactory | None,
           now: Callable[[], str], cycle: CycleFn) -> CycleReport:
    state_path = store.git_dir / STATE_FILE
    state = WatchState.load(state_path)
    recovered = recover(store)
    synced = store.sync()
    plan_commit = store.plan_head(synced.remote)
    ws = Workspace(store.root)
    # Live or pending work is what the last cycle left (state.active): only this watcher
    # writes status files, and a human commit that changes one shows in `changed`. Without a
    # saved state, `changed` is None: every experiment is read once.
    chosen = select(ws.experiments(), store.changed_experiments(state.reconciled, synced.remote),
                    set(recovered), state.active)
    refused = untrusted(store, ws, chosen, plan_commit, synced.remote)
    allowed = tuple(n for n in chosen if n not in refused)
    result = CycleResult((), (), 0, 0)
    commit = None
    if allowed:
        if executor_for is None:
            from tunegit.executors import executor_factory

            executor_for = executor_factory(ws)
        result = cycle(ws, allowed, now=now(), plan_commit=plan_commit,
                       executor_for=executor_for)
        if result.written:
            message = status_message(result.transitions, plan_commit, _names(result))
            crashpoint("before_commit")
            commit = store.commit(result.written, message)
            crashpoint("after_commit")
    push = store.push() if store.unpushed() else None
    active = tuple(n for n in chosen if has_work(_status_of(ws, n), pending=True))
    crashpoint("before_state_save")
    WatchState(synced.remote, active).save(state_path)
    return CycleReport(plan_commit, chosen, len(result.transitions), commit, push,
                       tuple(refused.values()) + result.errors, result.live, result.pending)


# --- trust: signed commits where the site asks for them ----------------------------------------

def requires_signature(ws: Workspace, name: str) -> bool:
    """Whether the experiment's site sets require_signed_commits (an unreadable plan or site
    is left to the engine, which reports it and submits nothing)."""
    try:
        plan = ws.load_plan(ws.experiment_dir(name) / "experiment.yaml").plan
        return ws.load_site(plan.site).require_signed_commits
    except TunegitError:
        return False


def trust_problem(store: GitStore, plan_commit: str, tip: str) -> str:
    """'' when the plan commit is validly signed and everything above it is a status-only
    commit; else why not."""
    for sha in store.commits_between(plan_commit, tip):
        others = [p for p in store.files_of(sha) if Path(p).name != STATUS_FILE]
        if others:
            return (f"commit {sha[:10]} carries tunegit's trailer but changes "
                    f"{', '.join(others[:3])}: only runs_status.yaml files may change above "
                    "the signed plan commit")
    ok, detail = store.verify_commit(plan_commit)
    if ok:
        return ""
    return f"the plan commit {store.describe(plan_commit)} has no valid signature ({detail})"


def untrusted(store: GitStore, ws: Workspace, chosen: Sequence[str], plan_commit: str,
              tip: str) -> dict[str, str]:
    """Experiments refused this cycle because their site requires signed commits."""
    strict = [n for n in chosen if requires_signature(ws, n)]
    if not strict:
        return {}
    problem = trust_problem(store, plan_commit, tip)
    if not problem:
        return {}
    hint = ("hint: sign the commit (`git commit -S`, or a signed merge) with a key the "
            "watcher trusts (gpg.ssh.allowedSignersFile or the GPG keyring of its checkout)")
    return {n: f"{n}: its site requires signed commits and {problem}; nothing reconciled "
            f"for it\n  {hint}" for n in strict}


def _names(result: CycleResult) -> list[str]:
    return [Path(p).parent.name for p in result.written]


# --- the daemon -------------------------------------------------------------------------------

# In the checkout's git directory: a post-receive hook or a webhook receiver touches it when
# the branch moves, to start a cycle now.
WAKE_FILE = "tunegit-wake"
JOB_END_FILE = "rc"  # the local executor's wrapper moves it in when a job ends
WAKE_EVENTS = ("created", "modified", "attrib", "closed", "moved")  # not opened or deleted
SETTLE_S = 0.2  # one write makes several events (created, modified, closed): one wake


class _Wake:
    """watchdog handler: a touch of the wake file ("branch"), or a local job's end ("job"),
    sets the event and says which.

    Nothing else wakes the watcher: its own fetch, commits and status writes change .git/
    and the checkout on every cycle, and a wake on those would turn `--interval` into a
    `--min-gap` poll loop.
    """

    def __init__(self, event: threading.Event, wake_file: Path):
        self.event = event
        self.wake_file = str(wake_file)
        self.kinds: set[str] = set()

    def dispatch(self, ev: Any) -> None:
        if ev.event_type not in WAKE_EVENTS:
            return
        path = ev.dest_path if ev.event_type == "moved" else ev.src_path
        text = path.decode() if isinstance(path, bytes) else str(path)
        kind = "branch" if text == self.wake_file else "job" if (
            Path(text).name == JOB_END_FILE) else ""
        if kind:
            self.kinds.add(kind)
            self.event.set()

    def take(self) -> set[str]:
        """What woke the watcher since the last call (clears the event)."""
        self.event.clear()
        kinds, self.kinds = self.kinds, set()
        return kinds


def watch_paths(ws: Workspace, git_dir: Path) -> list[tuple[Path, bool]]:
    """(directory, recursive): the git directory (for the wake file), and each local site's
    job-state directory (a job's end starts the next step without waiting for the timer).
    SLURM jobs are polled on the timer: their state is the scheduler's, not a file here."""
    from tunegit.executors import JOBS_DIR

    paths = [(git_dir, False)]
    for name in ws.sites():
        try:
            site = ws.load_site(name)
        except TunegitError:
            continue
        if site.executor == "local":
            jobs = ws.site_dir(site.output_dir) / JOBS_DIR
            with contextlib.suppress(OSError):
                jobs.mkdir(parents=True, exist_ok=True)
            if jobs.is_dir() and jobs not in [p for p, _ in paths]:
                paths.append((jobs, True))
    return paths


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
          executor_for: engine.ExecutorFactory | None = None) -> None:
    """Reconcile every ``interval_s``, and at once (at most every ``min_gap_s``) when the wake
    file is touched or a local job ends, until ``stop`` is set."""
    from watchdog.observers import Observer

    store = GitStore(config.root, remote=config.remote, branch=config.branch)
    observer = Observer()
    handler = _Wake(wake, store.git_dir / WAKE_FILE)
    for path, recursive in watch_paths(Workspace(config.root), store.git_dir):
        observer.schedule(handler, str(path), recursive=recursive)  # type: ignore[arg-type]
    observer.start()
    timer = True  # the first cycle
    try:
        while not stop.is_set():
            kinds = handler.take()
            if timer or "job" in kinds or ("branch" in kinds and branch_news(store)):
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
