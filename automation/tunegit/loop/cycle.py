"""One watcher cycle: follow the protected branch, reconcile, commit status, push.

`reconcile_once`, for cron, scrontab or the `watch` daemon (loop.daemon):

1. lock the checkout (a second watcher on it exits quietly);
2. restore a runs_status.yaml that does not parse (cut short by a full disk, overwritten
   by hand) from the last commit, its bytes kept in .git/tunegit-stray/: the scheduler's
   answer and adoption by job name bring back what happened since; commit status and
   results files a crashed cycle wrote but did not commit (never lose one); set untracked
   results files aside into .git/tunegit-stray/ (someone ran `tunegit
   results` here: the watcher writes results only as commits, and an untracked copy would
   stop the fast-forward that brings the watcher's own committed one);
3. fetch the protected branch only (with the watcher lease) and fast-forward (own unpushed
   commits replay); take or renew the lease, or stand by while another watcher holds it
   (edges.lease: one watcher acts per origin branch);
4. pick experiments that human commits changed since the last reconciled commit, or that
   had live jobs or work left after the last cycle (the saved state: an idle cycle reads
   no status file);
   put back any record of runs_status.yaml a human commit edited by hand (a direct push
   past guard-status), in a status commit naming it (loop.repair);
5. refuse those whose site requires signed commits when the plan commit is not (loop.trust);
6. `engine.cycle(...)` with plan_commit = the newest human commit on the branch;
7. at most one commit for the status and results files written, then push (rebase and
   retry);
8. record the reconciled commit in .git/tunegit-state.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import git

from tunegit.core import records
from tunegit.core import status as status_mod
from tunegit.core.reconcile import held_before
from tunegit.core.records import CycleError, CycleResult
from tunegit.core.states import LIVE_STATES, PENDING
from tunegit.edges import lease as leases
from tunegit.edges.crashpoints import crashpoint
from tunegit.edges.gitstore import GitStore, GitStoreError, PushResult, status_message
from tunegit.edges.results_files import REPORT_FILE, RESULTS_FILES
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.errors import TunegitError
from tunegit.executors import ExecutorFactory, executor_factory
from tunegit.files import read_status, utc_now, write_if_changed
from tunegit.loop import engine
from tunegit.loop.repair import (
    experiment_file,
    restore_damaged,
    restore_hand_edits,
    restore_message,
)
from tunegit.loop.trust import untrusted

STATE_FILE = "tunegit-state.json"
LOCK_FILE = "tunegit.lock"
STRAY_DIR = "tunegit-stray"
# What the watcher itself writes into an experiment's directory.
OWN_FILES = frozenset({STATUS_FILE, *RESULTS_FILES})
# What `tunegit results` / `tunegit report` leave untracked when run in its checkout.
STRAY_FILES = frozenset({*RESULTS_FILES, REPORT_FILE})

CycleFn = Callable[..., CycleResult]


@dataclasses.dataclass(frozen=True)
class WatchConfig:
    root: Path
    remote: str = "origin"
    branch: str = "main"
    push_attempts: int = 5
    backoff_s: float = 1.0
    lease_s: float = leases.DEFAULT_LEASE_S  # 0: no lease (one watcher can only ever run)
    sites: tuple[str, ...] = ()  # serve only plans for these sites (empty: every site)

    def serving(self) -> str:
        return f"serving sites: {', '.join(self.sites)}" if self.sites else "serving every site"


@dataclasses.dataclass(frozen=True)
class WatchState:
    """What the last cycle left behind (in .git/, never committed)."""

    reconciled: str | None = None  # the protected branch tip last acted on
    active: tuple[str, ...] = ()  # experiments with work left after the last cycle
    lease: leases.Observed = dataclasses.field(default_factory=leases.Observed)  # as seen

    @classmethod
    def load(cls, path: Path) -> WatchState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        seen = data.get("lease") if isinstance(data.get("lease"), dict) else {}
        observed = leases.Observed(**{k: v for k, v in seen.items()
                                     if k in ("sha", "since", "renewed") and
                                     isinstance(v, str)})
        return cls(data.get("reconciled"), tuple(data.get("active") or ()), observed)

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
    errors: tuple[CycleError, ...] = ()
    live: int = 0
    pending: int = 0
    skipped: str = ""  # why nothing ran (another watcher holds the lock)
    set_aside: tuple[str, ...] = ()  # untracked results files moved out of the way
    restored: tuple[str, ...] = ()  # damaged status files put back as last committed
    lease_note: str = ""  # taken over from another watcher, or a renewal that failed
    undone: tuple[str, ...] = ()  # human hand edits to status records, put back
    other_sites: tuple[tuple[str, str], ...] = ()  # (experiment, site) left to other watchers

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        head = f"{self.plan_commit[:10]}: "
        others = "; skipped (another site): " + ", ".join(
            f"{name} ({site})" for name, site in self.other_sites) if self.other_sites else ""
        if not self.experiments:
            text = "nothing to reconcile"
        else:
            text = (f"{len(self.experiments)} experiment(s), {self.transitions} transition(s), "
                    f"{self.live} live, {self.pending} pending")
        if self.commit:
            text += f"; committed {self.commit[:10]}"
        text += others
        if self.restored:
            text += (f"; restored {', '.join(self.restored)} from the last commit (damaged: not "
                     f"a record tunegit wrote; the damaged copy is in .git/{STRAY_DIR}/)")
        if self.set_aside:
            text += (f"; set aside {len(self.set_aside)} untracked results file(s) in "
                     f".git/{STRAY_DIR}/")
        for line in self.undone:
            text += f"; {line}"
        if self.lease_note:
            text += f"; {self.lease_note}"
        if self.push is not None and not self.push.pushed:
            text += f"; push failed after {self.push.attempts} attempt(s), kept local: " \
                    f"{self.push.error}"
        return head + text


# --- pure: which experiments ------------------------------------------------------------------

def has_work(status: status_mod.StatusFile | None, *, pending: bool) -> bool:
    if status is None:
        return pending
    states = {step.status for _, _, step in status.steps()}
    held = any(held_before(step) for _, _, step in status.steps())
    return bool(states & LIVE_STATES) or (pending and (PENDING in states or held))


def select(all_names: Sequence[str], changed: set[str] | None, recovered: set[str],
           active: Sequence[str]) -> tuple[str, ...]:
    """Changed (None: everything), recovered from a crash, or with work left last cycle;
    only existing plans."""
    wanted = set(all_names) if changed is None else changed | recovered | set(active)
    return tuple(n for n in all_names if n in wanted)


# --- I/O --------------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(git_dir: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """An exclusive lock on the checkout, the one every cycle takes (the watcher's and
    `tunegit run`'s). Without ``on_wait``: non-blocking, yields False when another holds it.
    With it: ``on_wait()`` is called once if another holds it, then waits for it."""
    git_dir.mkdir(parents=True, exist_ok=True)
    with (git_dir / LOCK_FILE).open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                yield False
                return
            on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
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
    """Commit status and results files a crashed cycle wrote but did not commit; refuse
    anything else.

    Returns the experiments whose files it committed (the next cycle looks at them again)."""
    dirty = store.dirty_paths()
    if not dirty or not all(_own_file(p) for p in dirty):
        return []  # clean, or a human's change: sync() refuses it with the way out
    names = list(dict.fromkeys(p.split("/")[1] for p in dirty))
    store.commit(dirty, status_message([], None, names))
    return names


def _own_file(path: str, names: frozenset[str] = OWN_FILES) -> bool:
    return experiment_file(path, names)


def set_aside_strays(store: GitStore, stamp: str) -> tuple[str, ...]:
    """Move untracked results files (and reports) in experiment directories to
    .git/tunegit-stray/STAMP/, keeping their paths: nothing is lost, and they cannot block
    the fast-forward. Returns the paths moved."""
    strays = tuple(p for p in store.untracked("experiments") if _own_file(p, STRAY_FILES))
    for rel in strays:
        dest = store.git_dir / STRAY_DIR / stamp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (store.root / rel).replace(dest)
    return strays


def plan_site(ws: Workspace, name: str) -> str | None:
    """The site an experiment's plan names; None when the plan does not load (then it is
    served, so that its steps are blocked with the plan's errors)."""
    try:
        return ws.load_plan(ws.experiment_dir(name) / PLAN_FILE).plan.site
    except TunegitError:
        return None


def served(ws: Workspace, names: Sequence[str], sites: Sequence[str],
           ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(experiments this watcher serves, (experiment, site) of those it leaves alone)."""
    if not sites:
        return tuple(names), ()
    found = {name: plan_site(ws, name) for name in names}
    return (tuple(n for n in names if found[n] is None or found[n] in sites),
            tuple((n, s) for n, s in found.items() if s is not None and s not in sites))


def reconcile_once(config: WatchConfig, *, executor_for: ExecutorFactory | None = None,
                   now: Callable[[], str] = utc_now, cycle: CycleFn | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> CycleReport:
    store = GitStore(config.root, remote=config.remote, branch=config.branch,
                     attempts=config.push_attempts, backoff_s=config.backoff_s, sleep=sleep,
                     fetch_also=(leases.FETCH_SPEC,) if config.lease_s else ())
    with locked(store.git_dir) as ok:
        if not ok:
            return CycleReport("", (), skipped="another reconcile holds the lock; skipped")
        try:
            return _cycle(store, executor_for, now, cycle or engine.cycle, config.lease_s,
                          config.sites)
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


def _cycle(store: GitStore, executor_for: ExecutorFactory | None,
           now: Callable[[], str], cycle: CycleFn, lease_s: float,
           sites: Sequence[str] = ()) -> CycleReport:
    state_path = store.git_dir / STATE_FILE
    state = WatchState.load(state_path)
    stamp = now().replace(":", "")
    restored = restore_damaged(store, stamp, STRAY_DIR)
    recovered = recover(store)
    strays = set_aside_strays(store, stamp)
    synced = store.sync()
    plan_commit = store.plan_head(synced.remote)
    observed, note = state.lease, ""
    if lease_s:
        claim = leases.claim(store, state.lease, now(), lease_s)
        observed, note = claim.observed, claim.message
        if not claim.ours:  # another watcher acts for this branch: submit nothing
            dataclasses.replace(state, lease=observed).save(state_path)
            return CycleReport(plan_commit, (), skipped=claim.message, restored=restored,
                               set_aside=strays)
    edits = restore_hand_edits(store, state.reconciled, synced.remote)
    if edits:  # committed now, before any decision reads the edited records
        store.commit([e.path for e in edits], restore_message(edits))
    ws = Workspace(store.root)
    # Live or pending work is what the last cycle left (state.active): only this watcher
    # writes status files, and a human commit that changes one shows in `changed`. Without a
    # saved state, `changed` is None: every experiment is read once.
    chosen, others = served(
        ws, select(ws.experiments(), store.changed_experiments(state.reconciled, synced.remote),
                   set(recovered) | {Path(p).parent.name for p in restored}
                   | {e.experiment for e in edits}, state.active), sites)
    refused = untrusted(store, ws, chosen, plan_commit, synced.remote) + linked(ws)
    allowed = tuple(n for n in chosen if n not in {e.experiment for e in refused})
    result = CycleResult((), (), 0, 0)
    commit = None
    if allowed:
        result = cycle(ws, allowed, now=now(), plan_commit=plan_commit,
                       executor_for=executor_for or executor_factory(ws))
        if result.written:
            message = status_message(result.transitions, plan_commit, _names(result))
            crashpoint("before_commit")
            commit = store.commit(result.written, message)
            crashpoint("after_commit")
    push = store.push() if store.unpushed() else None
    active = tuple(n for n in chosen if has_work(_status_of(ws, n), pending=True))
    crashpoint("before_state_save")
    WatchState(synced.remote, active, observed).save(state_path)
    return CycleReport(plan_commit, chosen, len(result.transitions), commit, push,
                       refused + result.errors, result.live, result.pending,
                       set_aside=strays, restored=restored, lease_note=note,
                       undone=tuple(e.line() for e in edits), other_sites=others)


def linked(ws: Workspace) -> tuple[CycleError, ...]:
    """Plans and site files committed as symbolic links: never run (Workspace.experiments
    leaves them out), reported each cycle until the link is removed."""
    return tuple(CycleError(Path(rel).parts[1] if rel.startswith("experiments/") else rel,
                            records.STOPPED, f"{rel} is a symbolic link: never run; commit the "
                            "file itself, inside the repository")
                 for rel in ws.links())


def _names(result: CycleResult) -> list[str]:
    return [Path(p).parent.name for p in result.written]
