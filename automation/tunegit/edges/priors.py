"""Prior runs: measured speed, memory and checkpoint size that estimates are drawn from.

Priors come from files in the repository, so an estimate is the same on a laptop,
in CI and on the cluster: ``sites/<site>.priors.yaml`` (harvested from the
site's prior-run logs by ``tunegit priors harvest``) and the metrics tunegit
itself records in ``experiments/*/runs_status.yaml`` for completed runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import yaml

from tunegit.core.priors import PriorRun, PriorsFile, prior_from_row, priors_from_status
from tunegit.core.states import COMPLETED
from tunegit.core.status import SAFE_LOADER
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.files import write_if_changed
from tunegit.spec.loader import load_file
from tunegit.spec.schema_errors import parse_model


def load_site_priors(ws: Workspace, site: str) -> list[PriorRun]:
    """sites/<site>.priors.yaml; a malformed file is a located PlanError, like a plan."""
    path = ws.root / "sites" / f"{site}.priors.yaml"
    if not path.is_file():
        return []
    shown = ws.rel(path)
    located = load_file(path, shown, empty_ok=True)
    if located.data is None or located.data == {}:
        return []
    parsed = parse_model(located, PriorsFile)
    return [prior_from_row(row, shown) for row in parsed.runs]


# --- repository priors, through an index --------------------------------------------------------
#
# Collecting repository priors parses every other experiment's runs_status.yaml: with hundreds
# of experiments that was nearly all of what `tunegit check` (the pre-commit hook) and each
# analysis in a watcher cycle cost (bench/PERFORMANCE.md). The index keeps, per status file,
# its stat key (mtime, size, inode), a digest of its bytes, and the priors read from it, so an
# unchanged file is stat'ed, not opened, and a file whose stat changed but whose bytes did not
# (a fresh clone given a cached index, as CI does; a checkout; a touch) is hashed, not parsed.
# It is kept in the git directory (never committed) and, for a long-lived process such as the
# watcher, in memory. As in git's own index, a stat key recorded less than RACY_NS after the
# file changed is not trusted (a same-size rewrite within one mtime tick would otherwise go
# unseen); the digest has no such window: the priors are parsed from the bytes it hashed.

INDEX_FILE = "tunegit-priors.json"
INDEX_VERSION = 2
RACY_NS = 2_000_000_000
_FIELD_ORDER = tuple(f.name for f in dataclasses.fields(PriorRun))

StatKey = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class _Entry:
    key: StatKey
    recorded_ns: int
    digest: str
    priors: tuple[PriorRun, ...]

    def valid_for(self, key: StatKey) -> bool:
        return self.key == key and key[0] + RACY_NS <= self.recorded_ns


# In-process memo: status file path -> entry (bounded by the number of status files).
_MEMO: dict[str, _Entry] = {}


def _stat_key(path: Path) -> StatKey | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def git_dir(root: Path) -> Path | None:
    """The checkout's git directory (a worktree's `.git` file points to it), else None."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    try:
        text = dot.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else root / target


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_entry(name: str, path: Path, key: StatKey, known: _Entry | None) -> _Entry:
    """The file's entry: ``known``'s priors when its bytes are unchanged, else parsed."""
    try:
        data = path.read_bytes()
    except OSError:
        return _Entry(key, time.time_ns(), "", ())
    digest = _digest(data)
    if known is not None and known.digest == digest:
        return dataclasses.replace(known, key=key, recorded_ns=time.time_ns())
    return _Entry(key, time.time_ns(), digest, _parse_priors(name, data))


def _parse_priors(name: str, data: bytes) -> tuple[PriorRun, ...]:
    try:
        text = data.decode("utf-8")
        if COMPLETED not in text:  # nothing to learn from; skip the YAML parse
            return ()
        loaded = yaml.load(text, Loader=SAFE_LOADER) or {}
    except (yaml.YAMLError, ValueError, RecursionError):
        return ()
    return tuple(priors_from_status(name, loaded, "")) if isinstance(loaded, dict) else ()


def _load_index(path: Path | None) -> dict[str, _Entry]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != INDEX_VERSION or data.get("fields") != list(_FIELD_ORDER):
            return {}
        return {rel: _Entry(tuple(e["key"]), int(e["recorded_ns"]), str(e["digest"]),
                            tuple(PriorRun(*row) for row in e["priors"]))
                for rel, e in data["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # missing, from another version, or damaged: rebuilt from the files


def _save_index(path: Path, entries: dict[str, _Entry]) -> None:
    data = {"version": INDEX_VERSION, "fields": list(_FIELD_ORDER), "entries": {
        rel: {"key": list(e.key), "recorded_ns": e.recorded_ns, "digest": e.digest,
              "priors": [dataclasses.astuple(p) for p in e.priors]}
        for rel, e in sorted(entries.items())}}
    with contextlib.suppress(OSError):  # a read-only checkout: the index only saves time
        write_if_changed(path, json.dumps(data, separators=(",", ":")) + "\n")


def load_repo_priors(ws: Workspace, exclude: str = "") -> list[PriorRun]:
    """Completed runs of every other experiment's runs_status.yaml (through the index above)."""
    directory = git_dir(ws.root)
    index_path = directory / INDEX_FILE if directory is not None else None
    index: dict[str, _Entry] | None = None  # loaded on the first miss of the in-process memo
    changed = False
    out: list[PriorRun] = []
    names = ws.experiments()
    for name in names:
        path = ws.experiment_dir(name) / STATUS_FILE
        key = _stat_key(path)
        if key is None:
            continue
        entry = _MEMO.get(str(path))
        if entry is None or not entry.valid_for(key):
            if index is None:
                index = _load_index(index_path)
            rel = f"experiments/{name}/{STATUS_FILE}"
            entry = index.get(rel)
            if entry is None or not entry.valid_for(key):
                entry = index[rel] = _read_entry(name, path, key, entry)
                changed = True
            _MEMO[str(path)] = entry
        if name != exclude:
            out += entry.priors
    if index is not None and index_path is not None:
        gone = set(index) - {f"experiments/{n}/{STATUS_FILE}" for n in names}
        for rel in gone:
            del index[rel]
        if changed or gone:
            _save_index(index_path, index)
    return out
