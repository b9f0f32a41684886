"""experiments/NAME/retry.yaml on disk and in git: load it, check it, apply it.

Reading the file and finding who asked (git log) are the I/O; judging each request
against the status and applying it are pure (core.retry)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from tunegit.core import retry as retry_mod
from tunegit.core.records import Transition
from tunegit.core.retry import DUE, REFUSED, Requester
from tunegit.core.status import StatusFile
from tunegit.edges.workspace import Workspace
from tunegit.errors import PlanError, Problem
from tunegit.files import write_if_changed
from tunegit.spec.loader import Located, load_file, load_text
from tunegit.spec.retry import RETRY_FILE, RETRY_HEADER, RetryFile, RetryRequest
from tunegit.spec.schema_errors import parse_model

SEP = "\x1f"


def load(ws: Workspace, name: str) -> tuple[tuple[RetryRequest, ...], Located | None]:
    """The experiment's requests (none without a file); a located PlanError when malformed,
    or when two entries ask for the same attempt of the same step."""
    path = ws.experiment_dir(name) / RETRY_FILE
    if not path.is_file():
        return (), None
    located = load_file(path, ws.rel(path), empty_ok=True)
    if located.data is None:
        return (), located
    requests = tuple(parse_model(located, RetryFile).retry)
    seen: set[str] = set()
    problems = []
    for i, r in enumerate(requests):
        if r.id in seen:
            problems.append(located.problem(("retry", i), f"asks again for attempt {r.attempt} "
                                            f"of {r.step}", hint="remove one of the two"))
        seen.add(r.id)
    if problems:
        raise PlanError(problems=problems)
    return requests, located


def problems(ws: Workspace, name: str, status: StatusFile | None) -> list[Problem]:
    """For `tunegit check`: each request that can never be applied, located."""
    requests, located = load(ws, name)
    if not requests or located is None:
        return []
    if status is None:
        return [located.problem(("retry",), "there is no runs_status.yaml: nothing ran yet",
                                hint="remove retry.yaml")]
    out = []
    for i, request in enumerate(requests):
        verdict = retry_mod.judge(status, request)
        if verdict.kind == REFUSED:
            out.append(located.problem(("retry", i, verdict.field), verdict.message,
                                       verdict.hint))
    return out


def apply_due(ws: Workspace, name: str, status: StatusFile, now: str,
              ) -> tuple[StatusFile, tuple[Transition, ...], list[str]]:
    """Apply the requests that are due (for the watcher and `tunegit run`): the new status,
    its transitions, and why any other request was not applied."""
    requests, _ = load(ws, name)
    verdicts = [(r, retry_mod.judge(status, r)) for r in requests]
    due = [r for r, v in verdicts if v.kind == DUE]
    who = requesters(ws.root, f"experiments/{name}/{RETRY_FILE}", {r.id for r in due})
    transitions: list[Transition] = []
    for request in due:
        status, moved = retry_mod.apply(status, name, request, now, who.get(request.id))
        transitions += moved
    refused = [f"{RETRY_FILE}: {r.id} not applied: {v.message} ({v.hint})"
               for r, v in verdicts if v.kind == REFUSED]
    return status, tuple(transitions), refused


def requesters(root: Path, rel: str, ids: Iterable[str]) -> dict[str, Requester]:
    """Who brought each request to this branch: the author of the first commit on its
    first-parent line (for a pull request, the merge commit) whose file has it."""
    wanted = set(ids)
    if not wanted:
        return {}
    log = _git(root, "log", "--first-parent", "--reverse", f"--format=%H{SEP}%an <%ae>",
               "--", rel)
    found: dict[str, Requester] = {}
    for line in (log or "").splitlines():
        sha, _, by = line.partition(SEP)
        for request_id in _ids(_git(root, "show", f"{sha}:{rel}"), rel) & (wanted - set(found)):
            found[request_id] = Requester(by, sha)
    return found


def _ids(text: str | None, rel: str) -> set[str]:
    if not text:
        return set()
    try:
        located = load_text(text, rel, empty_ok=True)
        return {r.id for r in parse_model(located, RetryFile).retry} if located.data else set()
    except PlanError:  # a malformed version in history: it asked for nothing
        return set()


def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=False)
    return proc.stdout if proc.returncode == 0 else None


def add(ws: Workspace, name: str, request: RetryRequest) -> Path:
    """Append ``request`` to the experiment's retry.yaml (made when missing), keeping the
    file's own text; the whole file is rewritten only when its layout does not allow it."""
    path = ws.experiment_dir(name) / RETRY_FILE
    old, _ = load(ws, name)
    entry = yaml.safe_dump([request.model_dump(exclude_none=True)], sort_keys=False,
                           allow_unicode=True, width=1000)
    entry = "".join(f"  {line}\n" for line in entry.splitlines())
    text = path.read_text(encoding="utf-8") if path.is_file() else RETRY_HEADER + "retry:\n"
    appended = text.rstrip("\n") + "\n" + entry
    if _requests_in(appended, ws.rel(path)) != [*old, request]:
        body = yaml.safe_dump({"retry": [r.model_dump(exclude_none=True)
                                         for r in (*old, request)]},
                              sort_keys=False, allow_unicode=True, width=1000)
        appended = RETRY_HEADER + body
    write_if_changed(path, appended)
    return path


def _requests_in(text: str, rel: str) -> list[RetryRequest] | None:
    try:
        located = load_text(text, rel)
        return list(parse_model(located, RetryFile).retry)
    except PlanError:
        return None
