"""A new lab repository on disk: `tunegit init`'s files, written like scaffold's, and git."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from tunegit.edges.scaffold import CONFLICT, FileAction, apply_writes
from tunegit.errors import TunegitError

BRANCH = "main"  # the protected branch the watcher follows by default


def write_init(root: Path, files: Mapping[str, str], actions: list[FileAction]) -> bool:
    """Write what is not a conflict; make ``root`` a git repository if it is none.
    Returns whether ``git init`` ran."""
    root.mkdir(parents=True, exist_ok=True)
    apply_writes(root, files, [x for x in actions if x.action != CONFLICT])
    if (root / ".git").exists():
        return False
    proc = subprocess.run(["git", "init", "-q", f"--initial-branch={BRANCH}", str(root)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TunegitError(f"git init {root} failed: {proc.stderr.strip()}",
                           hint="install git (2.28 or later), or run `git init` there yourself")
    return True
