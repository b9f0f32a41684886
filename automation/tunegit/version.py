"""tunegit's version, read from the one place it is written: pyproject.toml.

A source checkout (the package under ``automation/`` beside pyproject.toml, run with
PYTHONPATH or an editable install) reads pyproject.toml itself, so a bumped version is
seen without reinstalling; an installed package reads its distribution's metadata. Releases
are tagged ``v<version>``: the hooks and workflows a lab repository pins name that tag.
"""

from __future__ import annotations

import functools
import importlib.metadata
import tomllib
from pathlib import Path

DISTRIBUTION = "tunegit"
UNKNOWN = "0+unknown"
# Where labs install tunegit from and reference its hooks and workflows (`tunegit init
# --tunegit-url` sets another, e.g. a fork or a mirror on the cluster).
DEFAULT_URL = "https://github.com/tunegit/tunegit"
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _from_pyproject(path: Path) -> str | None:
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        return None
    version = project.get("version")
    return version if project.get("name") == DISTRIBUTION and isinstance(version, str) else None


@functools.lru_cache(maxsize=1)
def version() -> str:
    """This tunegit's version: the checkout's pyproject.toml, else the installed metadata."""
    found = _from_pyproject(_PYPROJECT)
    if found is not None:
        return found
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def tag() -> str:
    """The git tag this version is released as."""
    return f"v{version()}"


def requirement(extra: str = "", url: str = DEFAULT_URL) -> str:
    """A pip requirement for this version from its git tag, e.g. for ``pip install``."""
    extras = f"[{extra}]" if extra else ""
    return f"{DISTRIBUTION}{extras} @ git+{url}@{tag()}"


def install_hint(extra: str) -> str:
    """How to add an extra to this install (a lab's venv holds tunegit, not its source)."""
    return f"pip install '{requirement(extra)}'"
