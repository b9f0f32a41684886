"""Trust: which experiments a cycle may act on, where the site asks for signed commits.

Only the protected branch is fetched and acted on. An experiment whose site sets
`require_signed_commits: true` is reconciled only when the commit whose tree the watcher
runs (the plan commit) carries a valid signature (`git verify-commit`, with the keys of
the checkout's git config, e.g. `gpg.ssh.allowedSignersFile`), and every commit above it
is a status commit that touches runs_status.yaml files only (a forged trailer on a commit
that changes anything else is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunegit.core.records import UNTRUSTED, CycleError
from tunegit.edges.gitstore import GitStore
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.errors import TunegitError


def requires_signature(ws: Workspace, name: str) -> bool:
    """Whether the experiment's site sets require_signed_commits (an unreadable plan or site
    is left to the engine, which reports it and submits nothing)."""
    try:
        plan = ws.load_plan(ws.experiment_dir(name) / "experiment.yaml").plan
        return ws.load_site(plan.site).require_signed_commits
    except TunegitError:
        return False


def trust_problem(store: GitStore, plan_commit: str, tip: str) -> str:
    """'' when the plan commit is validly signed and everything above it is a status-only
    commit; else why not."""
    for sha in store.commits_between(plan_commit, tip):
        others = [p for p in store.files_of(sha) if Path(p).name != STATUS_FILE]
        if others:
            return (f"commit {sha[:10]} carries tunegit's trailer but changes "
                    f"{', '.join(others[:3])}: only runs_status.yaml files may change above "
                    "the signed plan commit")
    ok, detail = store.verify_commit(plan_commit)
    if ok:
        return ""
    return f"the plan commit {store.describe(plan_commit)} has no valid signature ({detail})"


def untrusted(store: GitStore, ws: Workspace, chosen: Sequence[str], plan_commit: str,
              tip: str) -> tuple[CycleError, ...]:
    """Experiments refused this cycle because their site requires signed commits."""
    strict = [n for n in chosen if requires_signature(ws, n)]
    if not strict:
        return ()
    problem = trust_problem(store, plan_commit, tip)
    if not problem:
        return ()
    hint = ("hint: sign the commit (`git commit -S`, or a signed merge) with a key the "
            "watcher trusts (gpg.ssh.allowedSignersFile or the GPG keyring of its checkout)")
    return tuple(CycleError(n, UNTRUSTED, f"its site requires signed commits and {problem}; "
                            f"nothing reconciled for it\n  {hint}") for n in strict)
