"""`tunegit history`: the timeline of an experiment or a run, read back from git.

Reading (I/O) collects each commit that touched the experiment with the parsed
runs_status.yaml at that commit; building the timeline from those revisions and
formatting it are pure.

- "planned": the first commit (any branch merged in) whose status file has the run,
  with its author: the person whose reviewed plan introduced it;
- "plan changed": human commits to experiment.yaml;
- step events: each change of state or job id between consecutive revisions on
  the protected branch's first-parent line (what the watcher recorded, in order).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tunegit.core import status as status_mod
from tunegit.core.retry import requested_text
from tunegit.core.status import StatusFile, Step
from tunegit.edges.gitstore import is_own_message
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE
from tunegit.errors import TunegitError

SEP, END = "\x1f", "\x1e"


@dataclasses.dataclass(frozen=True)
class Revision:
    sha: str
    author: str
    date: str  # ISO-8601
    subject: str
    own: bool  # a tunegit status commit
    plan_changed: bool
    status: StatusFile | None


@dataclasses.dataclass(frozen=True)
class Event:
    sha: str
    date: str
    author: str
    run: str  # "" for experiment-wide events
    what: str


# --- pure ------------------------------------------------------------------------------------

def _label(key: str | None) -> str:
    return "finetune" if key is None else key


def describe(step: Step) -> str:
    parts = [step.status]
    if step.job_id:
        parts.append(f"job {step.job_id}")
    if step.reason:
        parts.append(step.reason)
    if step.score is not None:
        parts.append(f"score {step.score:g}")
    if step.elapsed_s is not None:
        parts.append(f"{step.elapsed_s:.0f} s")
    return ", ".join(parts)


def step_events(rev: Revision, before: StatusFile | None, run: str | None) -> list[Event]:
    if rev.status is None:
        return []
    old = {(r, k): s for r, k, s in before.steps()} if before else {}
    out = []
    for r, key, step in rev.status.steps():
        if run is not None and r != run:
            continue
        prev = old.get((r, key))
        if prev is None or (prev.status, prev.job_id) == (step.status, step.job_id):
            continue
        what = f"{_label(key)}: {prev.status} -> {describe(step)}"
        if step.requested and step.attempt != prev.attempt:  # a new attempt someone asked for
            what += f" (attempt {step.attempt}, {requested_text(step.requested)})"
        out.append(Event(rev.sha, rev.date, rev.author, r, what))
    return out


def planned_events(revisions: Sequence[Revision], run: str | None) -> list[Event]:
    seen: set[str] = set()
    out = []
    for rev in revisions:
        for r in (rev.status.runs if rev.status else {}):
            if r in seen or (run is not None and r != run):
                continue
            seen.add(r)
            out.append(Event(rev.sha, rev.date, rev.author, r, f"planned ({rev.subject})"))
    return out


def timeline(all_revisions: Sequence[Revision], main_line: Sequence[Revision],
             run: str | None) -> list[Event]:
    """Events in order: plan commits and "planned" from all history, steps from the main line."""
    events = planned_events(all_revisions, run)
    planned_at = {e.sha for e in events}
    events += [Event(r.sha, r.date, r.author, "", f"plan changed ({r.subject})")
               for r in all_revisions if r.plan_changed and not r.own and r.sha not in planned_at]
    before: StatusFile | None = None
    for rev in main_line:
        events += step_events(rev, before, run)
        before = rev.status or before
    order = {r.sha: i for i, r in enumerate([*all_revisions, *main_line])}
    return sorted(events, key=lambda e: (e.date, order.get(e.sha, 0)))


def format_timeline(title: str, events: Sequence[Event]) -> str:
    if not events:
        return f"{title}: no history yet (is the plan committed?)\n"
    lines = [title]
    for e in events:
        who = e.author[:18].ljust(18)
        run = f"{e.run}: " if e.run else ""
        lines.append(f"{e.date[:19].replace('T', ' ')}  {e.sha[:10]}  {who}  {run}{e.what}")
    return "\n".join(lines) + "\n"


# --- I/O -------------------------------------------------------------------------------------

def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=False)
    return proc.stdout if proc.returncode == 0 else None


def _plan_commits(root: Path, shas: Sequence[str], path: str) -> set[str]:
    """Those of ``shas`` that change ``path`` (against any parent): one `git diff-tree`."""
    if not shas:
        return set()
    proc = subprocess.run(["git", "-C", str(root), "diff-tree", "--stdin", "-m", "--root", "-r",
                           "--name-only", "--", path], input="\n".join(shas) + "\n",
                          capture_output=True, text=True, check=False)
    touched, current = set(), ""
    for line in proc.stdout.splitlines():
        if line == path:
            touched.add(current)
        elif line:
            current = line.split()[0]
    return touched


def _statuses_at(root: Path, shas: Sequence[str], path: str) -> dict[str, StatusFile | None]:
    """The parsed ``path`` at each of ``shas``: one `git cat-file --batch`, each distinct blob
    parsed once."""
    if not shas:
        return {}
    proc = subprocess.run(["git", "-C", str(root), "cat-file", "--batch"],
                          input="".join(f"{sha}:{path}\n" for sha in shas).encode(),
                          capture_output=True, check=False)
    out, pos = proc.stdout, 0
    parsed: dict[str, StatusFile | None] = {}
    found: dict[str, StatusFile | None] = {}
    for sha in shas:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3 or header[1] != b"blob":
            found[sha] = None  # missing at that commit
            continue
        size = int(header[2])
        blob, text = header[0].decode(), out[pos:pos + size].decode("utf-8", "replace")
        pos += size + 1
        if blob not in parsed:
            try:
                parsed[blob] = status_mod.parse(text)
            except (status_mod.StatusFormatError, ValueError):
                parsed[blob] = None
        found[sha] = parsed[blob]
    return found


def revisions(root: Path, experiment: str, *, first_parent: bool,
              known: Mapping[str, Revision] | None = None) -> list[Revision]:
    """Commits touching the experiment's plan or status, oldest first (``known``: revisions
    already read, by sha, reused as they are)."""
    base = f"experiments/{experiment}"
    fmt = SEP.join(("%H", "%an", "%aI", "%s", "%B")) + END
    args = ["log", "--reverse", "--topo-order", f"--format={fmt}"]
    args += ["--first-parent"] if first_parent else []
    out = _git(root, *args, "--", f"{base}/{STATUS_FILE}", f"{base}/{PLAN_FILE}")
    if out is None:
        raise TunegitError(f"{root}: not a git repository, or no commits yet",
                           hint="run `tunegit history` inside the experiments repository")
    records = [r.split(SEP, 4) for r in filter(None, (r.strip("\n") for r in out.split(END)))]
    known = known or {}
    new = [r[0] for r in records if r[0] not in known]
    touched = _plan_commits(root, new, f"{base}/{PLAN_FILE}")
    statuses = _statuses_at(root, new, f"{base}/{STATUS_FILE}")
    return [known.get(sha) or Revision(sha, author, date, subject, is_own_message(body),
                                       sha in touched, statuses[sha])
            for sha, author, date, subject, body in records]


def history(root: Path, target: str) -> str:
    """`EXP` or `EXP/RUN` -> the formatted timeline."""
    experiment, _, run = target.partition("/")
    all_revs = revisions(root, experiment, first_parent=False)
    if not all_revs:
        raise TunegitError(f"no commits touch experiments/{experiment}",
                           hint="check the name (`ls experiments`) and that the plan is committed")
    main_line = revisions(root, experiment, first_parent=True,
                          known={r.sha: r for r in all_revs})
    if run and not any(r.status and run in r.status.runs for r in all_revs):
        known = sorted({n for r in all_revs if r.status for n in r.status.runs})
        raise TunegitError(f"no run {run!r} in the history of {experiment}",
                           hint=f"known runs: {', '.join(known) or 'none'}")
    return format_timeline(target, timeline(all_revs, main_line, run or None))
