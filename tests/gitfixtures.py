"""Real git in tmp dirs for tests: isolated config, a bare "origin", clones, a $HOME guard.

tests/conftest.py registers this module as a plugin, so its fixtures (`git_env`, `origin`,
`tunegit_on_path`) reach every test by name; test modules import only the helpers.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from planfixtures import GITIGNORE, LOCAL_FILES, make_repo

REPO = Path(__file__).resolve().parents[1]
AUTOMATION = REPO / "automation"
TESTS = Path(__file__).resolve().parent
# --- environment ------------------------------------------------------------------------------

@pytest.fixture(name="git_env")
def git_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolated git config and author; $HOME is an empty dir that must stay empty."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
                      "[protocol \"file\"]\n\tallow = always\n")
    env = {
        "HOME": str(home), "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"), "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "GIT_TERMINAL_PROMPT": "0",
    }
    # Jobs run from other directories: a relative PYTHONPATH=automation would not reach them.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUTOMATION),
                                                      os.environ.get("PYTHONPATH", "")]))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TUNEGIT_COMMITTER", raising=False)
    yield home
    touched = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not touched, f"the test wrote into $HOME: {touched}"


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def commit_all(cwd: Path, message: str, *, author: str = "Test Author") -> str:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message,
        env={"GIT_AUTHOR_NAME": author, "GIT_COMMITTER_NAME": author})
    return git(cwd, "rev-parse", "HEAD").strip()


@pytest.fixture(name="origin")
def origin_fixture(git_env: Path, tmp_path: Path) -> Path:
    """A bare origin whose main holds the local site and the capitalization task."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    make_repo(seed, files=LOCAL_FILES, gitignore=GITIGNORE)
    commit_all(seed, "Seed: site and task")
    git(seed, "push", "-q", "origin", "HEAD:main")
    shutil.rmtree(seed)
    return bare


def clone(origin: Path, dest: Path, *, name: str = "Test Author") -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(dest))
    git(dest, "config", "user.name", name)
    git(dest, "config", "user.email", f"{name.split()[0].lower()}@example.com")
    return dest


# --- running tunegit -------------------------------------------------------------------------

def tunegit(argv: Sequence[str]) -> int:
    """`tunegit ARGV` in-process (what the console script runs)."""
    from tunegit import cli

    return cli.main(list(argv))


@pytest.fixture(name="tunegit_on_path")
def tunegit_on_path_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `tunegit` executable first on PATH (then this Python's bin, for pre-commit)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "tunegit"
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{AUTOMATION}:{TESTS}' exec '{sys.executable}' -c "
        "'import sys, gitfixtures; sys.exit(gitfixtures.tunegit(sys.argv[1:]))' \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    path = os.pathsep.join([str(bindir), str(Path(sys.executable).parent),
                            os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    return script
