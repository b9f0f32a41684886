"""The watcher's lease: at most one watcher acts for an origin's protected branch.

Two watchers on two checkouts of one origin would each submit the same fine-tune. So a
watcher acts only while it holds the lease: a ref on the origin,
``refs/tunegit/lease/<branch>``, pointing at a small parentless commit that names its
holder (an id kept in the holder's .git/, its host and checkout). It is taken and renewed
with a compare-and-swap push (``--force-with-lease``): of two watchers racing for it, one
wins and the other stands by.

A standby watcher never compares its clock with the holder's: it notes, by its own clock,
since when the lease has not moved. The holder renews it at least every quarter of the
lease time; a lease unchanged for a whole lease time was left by a watcher that stopped,
and the standby takes it over (again by compare-and-swap, so two standbys cannot both).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

import git

from tunegit.core.stamps import seconds_between
from tunegit.edges.gitstore import GitStore, GitStoreError, trailers

LEASE_PREFIX = "refs/tunegit/lease"
SEEN_PREFIX = "refs/tunegit/seen-lease"  # the origin's lease refs as last fetched
ID_FILE = "tunegit-watcher-id"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
DEFAULT_LEASE_S = 20 * 60.0


@dataclasses.dataclass(frozen=True)
class Observed:
    """What this watcher knows of the lease between cycles (kept in its .git/)."""

    sha: str | None = None  # the lease commit last seen on the origin
    since: str | None = None  # since when (this watcher's clock) it has not moved
    renewed: str | None = None  # when this watcher last renewed its own lease


@dataclasses.dataclass(frozen=True)
class Claim:
    ours: bool
    observed: Observed
    message: str = ""  # why this watcher stands by


def watcher_id(store: GitStore) -> str:
    """This checkout's watcher id, made once and kept in .git/."""
    path = store.git_dir / ID_FILE
    try:
        known = path.read_text(encoding="utf-8").strip()
    except OSError:
        known = ""
    if known:
        return known
    made = uuid.uuid4().hex
    path.write_text(made + "\n", encoding="utf-8")
    return made


# What a cycle's fetch adds, to bring the lease with the branch in one round trip (a glob:
# a lease nobody took yet is no error).
FETCH_SPEC = f"+{LEASE_PREFIX}/*:{SEEN_PREFIX}/*"


def claim(store: GitStore, observed: Observed, now: str, lease_s: float) -> Claim:
    """Take, keep or renew the lease, or say who holds it. Call after the cycle's fetch."""
    me = watcher_id(store)
    ref = f"{LEASE_PREFIX}/{store.branch}"
    sha = store.rev(f"{SEEN_PREFIX}/{store.branch}")
    holder = _holder(store, sha) if sha else None
    if sha is None or holder is None or holder.get("holder") == me:
        ours = holder is not None and sha == observed.sha
        if ours and not _due(observed.renewed, now, lease_s / 4):
            return Claim(True, observed)
        try:
            return _take(store, ref, sha, me, now, observed, "")
        except GitStoreError as exc:
            # A standby waits a whole lease time from when it first saw this lease: while
            # half of it is left, the holder goes on acting (the push is retried next cycle).
            if ours and observed.renewed and _seconds(observed.renewed, now) < lease_s / 2:
                return Claim(True, observed, f"lease not renewed this cycle ({exc})")
            raise
    since = observed.since if observed.sha == sha and observed.since else now
    waited = _seconds(since, now)
    if waited >= lease_s:
        return _take(store, ref, sha, me, now, observed,
                     f"took over the lease from {_who(holder)}: unchanged for {waited:.0f} s")
    return Claim(False, Observed(sha, since, observed.renewed),
                 f"standby: another watcher ({_who(holder)}) holds the lease on "
                 f"{store.remote}'s {store.branch!r}; this one acts only if that lease stays "
                 f"unrenewed for {lease_s:.0f} s (unchanged for {waited:.0f} s so far)")


def _take(store: GitStore, ref: str, expected: str | None, me: str, now: str,
          observed: Observed, note: str) -> Claim:
    body = (f"tunegit watcher lease\n\nholder: {me}\nhost: {socket.gethostname()}\n"
            f"checkout: {store.root}\npid: {os.getpid()}\nrenewed: {now}\n")
    new = store._git("commit-tree", EMPTY_TREE, "-m", body, env=_quiet_identity()).strip()
    try:
        store._git("push", "--quiet", "--porcelain", "--no-verify",  # no hook for the lease
                   f"--force-with-lease={ref}:{expected or ''}", store.remote, f"{new}:{ref}")
    except git.GitCommandError as exc:
        text = f"{exc.stderr or ''}{exc.stdout or ''}"
        if "stale info" in text or "rejected" in text or "fetch first" in text:
            return Claim(False, Observed(expected, now, observed.renewed),
                         "standby: another watcher took the lease on "
                         f"{store.remote}'s {store.branch!r} first")
        raise GitStoreError(f"cannot take the watcher lease {ref} on {store.remote!r}: "
                            f"{text.strip() or exc}",
                            hint="check the network and the deploy key (it must be allowed to "
                            "push refs/tunegit/*); `--lease-minutes 0` turns the lease off "
                            "where only one watcher can ever run") from exc
    store._git("update-ref", f"{SEEN_PREFIX}/{store.branch}", new)
    return Claim(True, Observed(new, now, now), note)


def _holder(store: GitStore, sha: str) -> dict[str, str] | None:
    try:
        text = store._git("log", "-1", "--format=%B", sha)
    except git.GitCommandError:
        return None
    fields = {key: values[0] for key, values in trailers(text).items()}
    return fields if "holder" in fields else None


def _who(holder: dict[str, str]) -> str:
    return f"{holder.get('host', '?')}:{holder.get('checkout', '?')}"


def _due(last: str | None, now: str, every_s: float) -> bool:
    return last is None or _seconds(last, now) >= every_s


def _seconds(start: str, end: str) -> float:
    """From ``start`` to ``end`` (stamps of this watcher's clock); 0 when one is unreadable."""
    return seconds_between(start, end) or 0.0


def _quiet_identity() -> dict[str, str]:
    """commit-tree needs an identity; the lease commit is tunegit's, whoever runs it."""
    return {"GIT_AUTHOR_NAME": "tunegit watcher", "GIT_AUTHOR_EMAIL": "tunegit@localhost",
            "GIT_COMMITTER_NAME": "tunegit watcher", "GIT_COMMITTER_EMAIL": "tunegit@localhost"}
