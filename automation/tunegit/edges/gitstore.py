"""GitStore: the watcher's only door to git (fetch, fast-forward, commit, push).

Explicit and isolated: one checkout, one remote, one protected branch, given at
construction; nothing is read from the caller's current directory. History is
never rewritten except tunegit's own unpushed status commits, which are rebased
onto the protected branch when humans merged in between (like `git pull --rebase`).
A push that fails leaves the commit local; the next cycle pushes it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import git

from tunegit.core.records import Transition
from tunegit.core.states import STATUS_STATES
from tunegit.edges.crashpoints import crashpoint
from tunegit.errors import TunegitError, one_line

COMMITTER_ENV = "TUNEGIT_COMMITTER"  # set for tunegit's own commits; the guard-status hook reads it
OWN_TRAILER = "Tunegit-Experiment"  # every status commit carries it: how the watcher knows its own
STATUS_PREFIX = "status"
# A .git/index.lock is stale when no process has it open: git keeps the lock file open from
# taking it to renaming it into place, so a lock nobody holds was left by a killed git.
# The mtime is a second opinion only: one younger than this that nobody holds may be between
# git's close and rename (retried next cycle). Where open files cannot be listed (no /proc),
# age alone decides, and a lock older than this is removed.
STALE_LOCK_S = 120.0
FRESH_LOCK_S = 5.0


class GitStoreError(TunegitError):
    """The checkout is not in a state the watcher may act on."""


@dataclasses.dataclass(frozen=True)
class SyncResult:
    before: str  # HEAD before
    after: str  # HEAD after
    remote: str  # the protected branch's tip on the remote: what the watcher reconciles
    rebased: int = 0  # own unpushed commits replayed on top of new human commits


@dataclasses.dataclass(frozen=True)
class HumanCommit:
    """A commit that is not tunegit's own, and the files it touched."""

    sha: str
    author: str  # Name <email>
    files: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PushResult:
    pushed: bool
    attempts: int
    error: str = ""


def holders_of(path: Path, proc: Path = Path("/proc")) -> list[int] | None:
    """The pids of processes that have ``path`` open (from /proc/PID/fd), or None where open
    files cannot be listed. Processes whose descriptors this user may not read are not seen:
    the watcher's checkout belongs to the watcher's user."""
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(path)
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(pids)


# --- pure: commit messages -------------------------------------------------------------------

def _step_label(t: Transition) -> str:
    return "finetune" if t.key is None else t.key


def transition_line(t: Transition) -> str:
    line = f"{t.experiment}/{t.run} {_step_label(t)}: {t.old} -> {t.new}"
    if t.job_id:
        line += f" (job {t.job_id})"
    if t.reason:
        line += f" [{t.reason}]"
    if t.message:
        line += f": {one_line(t.message)}"
    return line


def state_counts(transitions: Iterable[Transition]) -> str:
    """"3 completed, 1 failed": how many steps reached each new state, in lifecycle order."""
    counts: dict[str, int] = {}
    for t in transitions:
        counts[t.new] = counts.get(t.new, 0) + 1
    order = [s for s in STATUS_STATES if s in counts] + sorted(set(counts) - set(STATUS_STATES))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def status_message(transitions: Sequence[Transition], plan_commit: str | None,
                   experiments: Sequence[str] = ()) -> str:
    """Subject, body (one line per transition) and trailers of one status commit."""
    names = list(dict.fromkeys([t.experiment for t in transitions] + list(experiments)))
    counts = state_counts(transitions) or "status files updated"
    if len(names) == 1:
        subject = f"{STATUS_PREFIX}({names[0]}): {counts}"
    else:
        subject = f"{STATUS_PREFIX}: {len(names)} experiments, {counts}"
    body = [transition_line(t) for t in transitions]
    runs = list(dict.fromkeys(f"{t.experiment}/{t.run}" for t in transitions))
    jobs = list(dict.fromkeys(t.job_id for t in transitions if t.job_id))
    trailers = [f"{OWN_TRAILER}: {n}" for n in names]
    if runs:
        trailers.append(f"Tunegit-Runs: {', '.join(runs)}")
    if jobs:
        trailers.append(f"Tunegit-Jobs: {', '.join(jobs)}")
    if plan_commit:
        trailers.append(f"Tunegit-Plan-Commit: {plan_commit}")
    parts = [subject] + (["\n".join(body)] if body else []) + ["\n".join(trailers)]
    return "\n\n".join(parts) + "\n"


def trailers(message: str) -> dict[str, list[str]]:
    """The `Key: value` lines of a message's last paragraph."""
    last = message.strip().split("\n\n")[-1]
    out: dict[str, list[str]] = {}
    for line in last.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            out.setdefault(key, []).append(value.strip())
    return out


def is_own_message(message: str) -> bool:
    return OWN_TRAILER in trailers(message)


def experiment_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "experiments" else None


# --- I/O: the store ---------------------------------------------------------------------------

class GitStore:
    def __init__(self, root: Path, *, remote: str = "origin", branch: str = "main",
                 attempts: int = 5, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, fetch_also: Sequence[str] = ()):
        try:
            self.repo = git.Repo(root, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitStoreError(f"{root} is not a git checkout",
                                hint="clone the experiments repository there first") from exc
        self.root = Path(self.repo.working_dir)
        self.remote, self.branch = remote, branch
        self.attempts, self.backoff_s, self.sleep = attempts, backoff_s, sleep
        self.fetch_also = tuple(fetch_also)  # more refspecs each fetch brings (the lease)

    @property
    def remote_ref(self) -> str:
        return f"refs/remotes/{self.remote}/{self.branch}"

    @property
    def git_dir(self) -> Path:
        return Path(self.repo.git_dir)

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return str(self.repo.git.execute(["git", *args], env=env))

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def rev(self, ref: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except git.GitCommandError:
            return None

    def is_ancestor(self, a: str, b: str) -> bool:
        try:
            self._git("merge-base", "--is-ancestor", a, b)
        except git.GitCommandError:
            return False
        return True

    # checkout state

    def dirty_paths(self) -> list[str]:
        out = self._git("status", "--porcelain", "--untracked-files=no", "-z")
        return sorted(entry[3:] for entry in out.split("\0") if entry)

    def untracked(self, under: str) -> list[str]:
        """Untracked files below ``under`` that .gitignore does not cover (the ones a merge
        refuses to overwrite)."""
        out = self._git("ls-files", "--others", "--exclude-standard", "-z", "--", under)
        return sorted(p for p in out.split("\0") if p)

    def committed_text(self, rel: str, ref: str = "HEAD") -> str | None:
        """A file's text at ``ref``; None when it is not there."""
        try:
            return self._git("show", f"{ref}:{rel}")
        except git.GitCommandError:
            return None

    def clear_stale_lock(self, now: float | None = None) -> bool:
        """Remove an index.lock a killed git left behind; refuse one a process holds, or a
        fresh one (True: removed). Judged by who has it open, not by the clock: a clock that
        runs ahead makes every lock look old."""
        lock = self.git_dir / "index.lock"
        try:
            age = (time.time() if now is None else now) - lock.stat().st_mtime
        except FileNotFoundError:
            return False
        holders = holders_of(lock)
        retry = "the next cycle retries"
        if holders:
            raise GitStoreError(
                f"{lock} is held by process {', '.join(map(str, holders))}: another git "
                "process is working in the watcher's checkout",
                hint=f"{retry}; the watcher's checkout is tunegit's alone, so find who runs git "
                "there")
        if (holders is None and age < STALE_LOCK_S) or 0 <= age < FRESH_LOCK_S:
            raise GitStoreError(
                f"{lock} exists ({age:.0f} s old): another git process is working in the "
                "watcher's checkout",
                hint=f"{retry}; a lock no process holds is treated as left by a killed git "
                "and removed" + ("" if holders is not None else
                                 f" once it is {STALE_LOCK_S:.0f} s old"))
        lock.unlink(missing_ok=True)
        return True

    def check_checkout(self) -> None:
        self.clear_stale_lock()
        if self.repo.head.is_detached:
            raise GitStoreError(
                f"{self.root}: HEAD is detached; the watcher follows the branch {self.branch!r}",
                hint=f"`git -C {self.root} checkout {self.branch}`")
        current = self.repo.active_branch.name
        if current != self.branch:
            raise GitStoreError(
                f"{self.root}: on branch {current!r}, but the watcher follows {self.branch!r} only",
                hint=f"`git -C {self.root} checkout {self.branch}` or pass `--branch {current}`")
        dirty = self.dirty_paths()
        if dirty:
            raise GitStoreError(
                f"{self.root}: uncommitted changes in {', '.join(dirty)}",
                hint="the watcher's checkout is tunegit's alone: commit or `git stash` them, "
                "then run again")

    # fetch and integrate

    def fetch(self) -> str:
        """Fetch the protected branch only (and ``fetch_also``); return its tip on the remote."""
        refspec = f"+refs/heads/{self.branch}:{self.remote_ref}"
        try:
            prune = ("--prune",) if self.fetch_also else ()  # a lease deleted on the remote
            self._git("fetch", "--no-tags", "--quiet", *prune, self.remote, refspec,
                      *self.fetch_also)
        except git.GitCommandError as exc:
            raise GitStoreError(f"cannot fetch {self.branch!r} from {self.remote!r}: "
                                f"{_stderr(exc)}",
                                hint="check the network and the deploy key; the next cycle "
                                "retries") from exc
        sha = self.rev(self.remote_ref)
        assert sha is not None
        return sha

    def is_own(self, ref: str) -> bool:
        """Whether a commit is tunegit's own status commit (by its trailer)."""
        return is_own_message(_message(self.repo.commit(ref)))

    def plan_head(self, ref: str) -> str:
        """The newest commit at or below ``ref`` (first parents) that is not a status commit."""
        sha = self.rev(ref)
        assert sha is not None
        while self.is_own(sha):
            parents = self.repo.commit(sha).parents
            if not parents:
                break
            sha = parents[0].hexsha
        return sha

    def own_commits(self, base: str, tip: str = "HEAD") -> list[str] | None:
        """Commits in base..tip if all are tunegit's own, else None."""
        shas = [s for s in self._git("rev-list", f"{base}..{tip}").split() if s]
        for sha in shas:
            if not self.is_own(sha):
                return None
        return shas

    def remote_tip(self) -> str | None:
        """The remote branch's commit as the remote says now (one `git ls-remote`); None when
        it cannot be told."""
        try:
            words = self._git("ls-remote", "--heads", self.remote,
                              f"refs/heads/{self.branch}").split()
        except git.GitCommandError:
            return None
        return words[0] if words else None

    def sync(self) -> SyncResult:
        """Fetch, then fast-forward (or replay own unpushed status commits). Never a merge."""
        self.check_checkout()
        before = self.head()
        remote = self.fetch()
        rebased = self._integrate(before, remote)
        return SyncResult(before, self.head(), remote, rebased)

    def _integrate(self, head: str, remote: str) -> int:
        if head == remote or self.is_ancestor(remote, head):
            return 0
        if self.is_ancestor(head, remote):
            self._git("merge", "--ff-only", "--quiet", remote)
            return 0
        own = self.own_commits(remote)
        if own is None:
            raise GitStoreError(
                f"{self.root}: branch {self.branch!r} has diverged from {self.remote}/{self.branch}"
                " with commits that are not tunegit's",
                hint=f"the watcher never rewrites history: inspect `git -C {self.root} log "
                f"{self.remote_ref}...HEAD` and reset the checkout by hand")
        try:
            self._git("rebase", "--quiet", remote, env=self._env())
        except git.GitCommandError as exc:
            self._git("rebase", "--abort")
            raise GitStoreError(
                f"{self.root}: tunegit's unpushed status commits conflict with "
                f"{self.remote}/{self.branch}: {_stderr(exc)}",
                hint="someone edited runs_status.yaml by hand on the branch; revert that edit "
                "there, and the next cycle pushes") from exc
        return len(own)

    # commit and push

    def _env(self) -> dict[str, str]:
        return {**os.environ, COMMITTER_ENV: "1"}

    def commit(self, paths: Sequence[Path | str], message: str) -> str | None:
        """Commit exactly these paths (nothing else staged goes in). None if unchanged."""
        rel = [str(Path(p).resolve().relative_to(self.root.resolve())) if Path(p).is_absolute()
               else str(p) for p in paths]
        if not rel:
            return None
        self._git("add", "--", *rel)
        try:
            self._git("diff", "--cached", "--quiet", "--", *rel)
            return None
        except git.GitCommandError:
            pass
        self._commit(rel, message)
        return self.head()

    def _commit(self, rel: Sequence[str], message: str) -> None:
        msg_file = self.git_dir / "TUNEGIT_COMMIT_MSG"
        msg_file.write_text(message, encoding="utf-8")
        try:
            self._git("commit", "--quiet", "--no-verify", "-F", str(msg_file), "--only", "--",
                      *rel, env=self._env())
        finally:
            msg_file.unlink(missing_ok=True)

    def unpushed(self) -> list[str]:
        if self.rev(self.remote_ref) is None:
            return [s for s in self._git("rev-list", "HEAD").split() if s]
        return [s for s in self._git("rev-list", f"{self.remote_ref}..HEAD").split() if s]

    def push(self) -> PushResult:
        """Push HEAD to the protected branch; on rejection fetch, replay, back off, retry."""
        error = ""
        for attempt in range(1, self.attempts + 1):
            if not self.unpushed():
                return PushResult(True, attempt - 1)
            try:
                crashpoint("before_push")
                self._git("push", "--quiet", self.remote, f"HEAD:refs/heads/{self.branch}")
                crashpoint("after_push")
                self._git("update-ref", self.remote_ref, self.head())
                return PushResult(True, attempt)
            except git.GitCommandError as exc:
                error = _stderr(exc)
            if attempt == self.attempts:
                break
            self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                self._integrate(self.head(), self.fetch())
            except GitStoreError as exc:
                return PushResult(False, attempt, str(exc))
        return PushResult(False, self.attempts, error)

    # history and signatures

    def commits_between(self, base: str, tip: str) -> list[str]:
        return [s for s in self._git("rev-list", f"{base}..{tip}").split() if s]

    def files_of(self, sha: str) -> list[str]:
        out = self._git("diff-tree", "--no-commit-id", "--name-only", "-r", "-m", "--root", sha)
        return [f for f in out.split("\n") if f]

    def describe(self, sha: str) -> str:
        return f"{sha[:10]} ({self._git('log', '-1', '--format=%an: %s', sha).strip()})"

    def verify_commit(self, sha: str) -> tuple[bool, str]:
        """`git verify-commit`: (valid, why not) with the checkout's trusted keys."""
        try:
            self._git("verify-commit", sha)
        except git.GitCommandError as exc:
            raw = exc.stderr if isinstance(exc.stderr, str) else ""
            lines = [x for x in raw.strip().removeprefix("stderr:").strip(" '\n").splitlines()
                     if x.strip()]
            return False, lines[-1].strip() if lines else "the commit is not signed"
        return True, ""


    def human_commits(self, since: str, until: str, *diff: str) -> list[HumanCommit]:
        """The commits in since..until that are not tunegit's own, newest first, each with
        the files it touched, from one `git log` (a watcher catching up thousands of commits
        runs one git, not one per commit). ``diff``: how merges are diffed (``-m``: against
        each parent; ``--first-parent --diff-merges=first-parent``: what they brought to the
        branch). Records are split by control characters no commit message holds."""
        out = self._git("log", *diff, "--name-only", "--no-renames",
                        "--format=%x1e%H%x1f%an <%ae>%x1f%B%x1f", f"{since}..{until}")
        commits = []
        for record in out.split("\x1e")[1:]:
            sha, author, message, listed = record.split("\x1f", 3)
            if not is_own_message(message):
                commits.append(HumanCommit(sha, author,
                                           tuple(f for f in listed.split("\n") if f)))
        return commits

    def changed_experiments(self, since: str | None, until: str) -> set[str] | None:
        """Experiments touched by human commits in since..until; None means "all of them"."""
        if since is None or self.rev(since) is None or not self.is_ancestor(since, until):
            return None
        names: set[str] = set()
        for commit in self.human_commits(since, until, "-m"):
            if any(f.startswith("sites/") for f in commit.files):
                return None
            names |= {n for n in map(experiment_of, commit.files) if n}
        return names


def _message(commit: git.Commit) -> str:
    message = commit.message
    return message if isinstance(message, str) else message.decode("utf-8", "replace")


def _stderr(exc: git.GitCommandError) -> str:
    text = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
    text = text.strip().removeprefix("stderr:").strip().strip("'").strip()
    return text or str(exc)
