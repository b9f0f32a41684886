"""Read-only facts from git (the commit a plan is submitted from)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _rev_parse(root: Path, *args: str) -> str | None:
    """`git rev-parse ARGS` in ``root``: its one-line answer, or None when git fails or says
    nothing (outside a repository, no such revision)."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", *args],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = proc.stdout.strip()
    return answer if proc.returncode == 0 and answer else None


def head_commit(root: Path) -> str | None:
    """HEAD's sha, or None outside a git repository or before the first commit."""
    return _rev_parse(root, "--verify", "-q", "HEAD")


def git_dir(root: Path) -> Path | None:
    """The repository's .git directory (the common one, for a worktree), or None outside
    a git repository."""
    path = _rev_parse(root, "--path-format=absolute", "--git-common-dir")
    return Path(path) if path else None


def upstream(root: Path) -> str | None:
    """The current branch's upstream tracking branch (`origin/main`): the last pushed state.

    None outside a repository, on a detached HEAD, or when the branch tracks nothing."""
    return _rev_parse(root, "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
