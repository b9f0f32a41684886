"""Read-only facts from git (the commit a plan is submitted from)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def head_commit(root: Path) -> str | None:
    """HEAD's sha, or None outside a git repository or before the first commit."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else None


def git_dir(root: Path) -> Path | None:
    """The repository's .git directory (the common one, for a worktree), or None outside
    a git repository."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    path = proc.stdout.strip()
    return Path(path) if proc.returncode == 0 and path else None


def upstream(root: Path) -> str | None:
    """The current branch's upstream tracking branch (`origin/main`): the last pushed state.

    None outside a repository, on a detached HEAD, or when the branch tracks nothing."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--abbrev-ref", "--symbolic-full-name",
             "@{upstream}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None
