"""Repairs a cycle makes before it acts: tunegit's records put back as tunegit wrote them.

- ``restore_damaged``: a runs_status.yaml in the watcher's checkout that tunegit cannot have
  written (cut short by a full disk, overwritten) is put back as last committed.
- ``restore_hand_edits``: a human commit that reached the protected branch with a change to
  a record only tunegit may make (a direct push past guard-status: `running -> completed`,
  a job id, a removed record) has that record put back as tunegit last wrote it, in a
  status commit that names the commit and its author. Without it the watcher would act on
  the edit: evaluate a checkpoint that does not exist, stop tracking a running job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tunegit.core import status as status_mod
from tunegit.core.status_edits import FRESH, hand_edits
from tunegit.edges.gitstore import OWN_TRAILER, GitStore
from tunegit.edges.workspace import STATUS_FILE
from tunegit.files import read_status, write_if_changed


@dataclasses.dataclass(frozen=True)
class Restored:
    """One status file whose hand-edited records were put back."""

    path: str  # experiments/EXP/runs_status.yaml
    commit: str  # the human commit that edited it
    author: str
    what: tuple[str, ...]  # the records, as guard-status words them

    @property
    def experiment(self) -> str:
        return Path(self.path).parts[1]

    def line(self) -> str:
        return (f"{self.path}: commit {self.commit[:10]} by {self.author} edited tunegit's "
                f"record by hand ({'; '.join(self.what)}); restored")


def experiment_file(rel: str, names: frozenset[str]) -> bool:
    """Whether ``rel`` is ``experiments/<name>/<one of names>``."""
    parts = rel.split("/")
    return len(parts) == 3 and parts[0] == "experiments" and parts[2] in names


def _is_status(rel: str) -> bool:
    return experiment_file(rel, frozenset({STATUS_FILE}))


def restore_damaged(store: GitStore, stamp: str, stray_dir: str) -> tuple[str, ...]:
    """Put back, as last committed, each status file in the checkout that tunegit cannot
    have written (status_mod.damage: it does not parse, is cut short, or lost the record of
    a submitted job), keeping its bytes in .git/STRAY_DIR/STAMP/ (one never committed is
    set aside only). A damaged record is never committed: what happened since the last
    commit comes back from the scheduler, whose jobs are adopted by name. Only files that
    differ from the last commit are read. Returns the paths restored."""
    changed = [*store.dirty_paths(), *store.untracked("experiments")]
    restored = []
    for rel in changed:
        if not _is_status(rel):
            continue
        path = store.root / rel
        committed = store.committed_text(rel)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            text = None
        except OSError:
            continue
        if text is not None and status_mod.damage(text, committed) is None:
            continue
        dest = store.git_dir / stray_dir / stamp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
        if committed is not None:
            write_if_changed(path, committed)
        restored.append(rel)
    return tuple(restored)


def restore_hand_edits(store: GitStore, since: str | None, until: str) -> list[Restored]:
    """Put back the records that human commits in since..until edited by hand (each against
    its first parent: what the branch held before it). Writes the files; the caller commits
    them (``restore_message``). Nothing when there is no known last cycle."""
    if since is None or store.rev(since) is None or not store.is_ancestor(since, until):
        return []
    found: list[Restored] = []
    commits = store.human_commits(since, until, "--first-parent", "--diff-merges=first-parent")
    for commit in reversed(commits):  # oldest first
        for rel in filter(_is_status, commit.files):
            before = store.committed_text(rel, f"{commit.sha}^")
            after = store.committed_text(rel, commit.sha)
            problems = hand_edits(before, after, rel)
            if problems and before is not None and _put_back(store.root / rel, before, after):
                found.append(Restored(rel, commit.sha, commit.author, tuple(
                    f"{p.field + ': ' if p.field else ''}{p.message}" for p in problems)))
    return found


def _put_back(path: Path, before: str, after: str | None) -> bool:
    """The checkout's file with every record the edit touched as it was ``before``; the
    records tunegit wrote since (and the runs the plan gained) kept. True if it changed."""
    try:
        old = status_mod.parse(before)
        current = read_status(path)
        edited = status_mod.parse(after) if after is not None else None
    except (status_mod.StatusFormatError, ValueError):
        return write_if_changed(path, before)
    if current is None or edited is None:
        return write_if_changed(path, before)
    touched = {(r, k) for r, k, s in old.steps() if not _same(edited, r, k, s)}
    status = dataclasses.replace(current, run_group=old.run_group, plan_commit=old.plan_commit)
    for run, key, step in old.steps():
        if (run, key) in touched:
            status = status.with_step(run, key, step)
    for run, key, step in edited.steps():
        if not old.has_step(run, key) and step not in FRESH:
            status = status.with_step(run, key, status_mod.Step())
    return write_if_changed(path, status_mod.dump(status))


def _same(status: status_mod.StatusFile, run: str, key: str | None,
          step: status_mod.Step) -> bool:
    return status.has_step(run, key) and status.step(run, key) == step


def restore_message(restored: list[Restored]) -> str:
    """A status commit saying which human commit's hand edit was undone, and by whom."""
    names = list(dict.fromkeys(r.experiment for r in restored))
    subject = (f"status({names[0]}): tunegit's record restored" if len(names) == 1
               else f"status: {len(names)} experiments, tunegit's records restored")
    body = "\n".join(r.line() for r in restored)
    trailers = "\n".join(f"{OWN_TRAILER}: {n}" for n in names)
    return f"{subject}\n\n{body}\n\n{trailers}\n"
