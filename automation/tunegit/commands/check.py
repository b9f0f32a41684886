"""`tunegit check [PATH...] [--write]`: validate, estimate, render; fail on stale renderings."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from tunegit.commands.common import out, warn, workspace
from tunegit.core import status as status_mod
from tunegit.edges import retry_requests
from tunegit.edges.analysis import Analysis, analyse
from tunegit.edges.workspace import DESIGN_LOG, PLAN_FILE, PLAN_MD, STATUS_FILE, Workspace
from tunegit.errors import PlanError, Problem
from tunegit.files import read_rendered, read_status, write_if_changed
from tunegit.render.plandoc import rendered_from, strip_timestamps
from tunegit.spec.retry import RETRY_FILE


def plan_files(ws: Workspace, paths: list[str], base: Path | None = None) -> list[Path]:
    """Plan files named by PATHs; relative paths are relative to ``base`` (`-C DIR`, else cwd)."""
    if not paths:
        return [ws.experiment_dir(n) / PLAN_FILE for n in ws.experiments()]
    found: list[Path] = []
    for arg in paths:
        path = Path(os.path.abspath((base or Path.cwd()) / arg))  # links are checked, not followed
        if path.is_dir() and (path / "experiments").is_dir() and not (path / PLAN_FILE).is_file():
            sub = Workspace(path)
            found += [sub.experiment_dir(n) / PLAN_FILE for n in sub.experiments()]
        elif path.name in (PLAN_MD, STATUS_FILE, DESIGN_LOG, RETRY_FILE):
            found.append(path.parent / PLAN_FILE)
        else:
            found.append(ws.resolve_experiment(str(path) if path.exists() else arg))
    return list(dict.fromkeys(found))


def stale_files(a: Analysis, write: bool) -> list[Problem]:
    """Compare committed renderings with fresh ones; write them when asked."""
    directory = a.loaded.directory
    rel = a.ws.rel(directory)
    problems = []
    fix = f"run `tunegit check --write {rel}` and commit the result"
    md_path = directory / PLAN_MD
    md = a.plan_md()
    current = read_rendered(md_path)
    if current != md:
        if write:
            write_if_changed(md_path, md)
            out(f"wrote {rel}/{PLAN_MD}")
        elif (what := staleness(current, md, a.site.name)) is not None:
            problems.append(Problem(f"{rel}/{PLAN_MD}", what, hint=fix))
        else:
            out(f"note: {rel}/{PLAN_MD}: {moved_figures(current or '', md)}; "
                f"`tunegit check --write {rel}` refreshes them when you choose")
    problems += _status(a, write, fix)
    if write:
        log_path = directory / DESIGN_LOG
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        log = a.design_log(stamp)
        old = read_rendered(log_path) or ""
        if strip_timestamps(old) != strip_timestamps(log):
            write_if_changed(log_path, log)
            out(f"wrote {rel}/{DESIGN_LOG}")
    return problems


def staleness(current: str | None, fresh: str, site: str) -> str | None:
    """Why a committed runs_plan.md is stale, or None when only its figures moved.

    Stale means rendered from another plan or site file (their hashes in its first line). A
    rendering that differs while both are the same drew on other history (estimates learn
    from completed runs) or came from another tunegit version: not a reason to fail a commit
    nobody changed the plan in."""
    if current is None:
        return "is missing"
    old, new = rendered_from(current), rendered_from(fresh)
    if old is None or new is None or old[1] is None:
        return "is stale (rendered by an older tunegit, or edited)"
    if old[0] != new[0]:
        return "is stale (the plan changed since it was rendered)"
    if old[1] != new[1]:
        return f"is stale (sites/{site}.yaml changed since it was rendered)"
    return None


def moved_figures(current: str, fresh: str) -> str:
    """What moved in a rendering that is not stale (see ``staleness``)."""
    old, new = rendered_from(current), rendered_from(fresh)
    gained = (new[2] or 0) - (old[2] or 0) if old and new else 0
    if gained > 0:
        return f"estimates would change with {gained} new completed run(s)"
    return "its figures would change (other history, or another tunegit version)"


def _retry_problems(a: Analysis) -> list[Problem]:
    """retry.yaml's entries that can never apply to the recorded status, located."""
    try:
        status = read_status(a.loaded.directory / STATUS_FILE)
    except (status_mod.StatusFormatError, ValueError):
        return []  # `_status` reports it
    return retry_requests.problems(a.ws, a.name, status)


def _status(a: Analysis, write: bool, fix: str) -> list[Problem]:
    path = a.loaded.directory / STATUS_FILE
    shown = f"{a.ws.rel(path)}"
    try:
        current = read_status(path)
    except (status_mod.StatusFormatError, ValueError) as exc:
        return [Problem(shown, f"unreadable: {exc}", hint="restore it from git: "
                        f"`git checkout -- {shown}`")]
    wanted = (status_mod.initial(a.expansion, a.name) if current is None
              else status_mod.sync(current, a.expansion, a.name))
    if current == wanted:
        return []
    if write:
        write_if_changed(path, status_mod.dump(wanted))
        out(f"wrote {shown}")
        return []
    what = "is missing" if current is None else "lacks runs or evaluations the plan now has"
    return [Problem(shown, what, hint=fix)]


def check_sites_only(ws: Workspace, quiet: bool) -> int:
    """A repository with no experiment yet (a lab's first commit): its site files are what
    there is to check; a bad one fails like a plan, at its line."""
    sites = ws.sites()
    for name in sites:
        ws.load_site(name)
    if not quiet:
        checked = f"sites checked: {', '.join(sites)}" if sites else "no sites either"
        out(f"no experiments yet ({checked}); `tunegit new NAME` starts one")
    return 0


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    files = plan_files(ws, args.paths, Path(args.root) if args.root else None)
    if not files:
        return check_sites_only(ws, args.quiet)
    immutable = _immutability(ws, args.base, announce=not args.write)
    failed = 0
    for rel in ws.links() if not args.paths else ():
        print(f"{rel}: a symbolic link: tunegit never runs a plan or site through a link\n"
              "  hint: commit the file itself as a regular file in the repository",
              file=sys.stderr)
        failed += 1
    for path in files:
        try:
            a = analyse(ws, path)
            warn(a.warnings)
            problems = (stale_files(a, args.write) + _retry_problems(a)
                        + immutable.pop(a.plan_rel, []))
        except PlanError as exc:
            problems = list(exc.problems)
        if problems:
            failed += 1
            for p in problems:
                print(p.format(), file=sys.stderr)
            continue
        if not args.quiet:
            e = a.estimate
            out(f"{a.plan_rel}: ok: {len(a.expansion.runs)} runs, {len(a.expansion.evaluations)} "
                f"evaluations, {e.gpu_hours:.2f} {e.device.upper()}-h, {e.disk_gib:.1f} GiB"
                + (" (preliminary estimates)" if e.preliminary else ""))
    for problems in immutable.values():  # experiments not among the files checked
        failed += 1
        for p in problems:
            print(p.format(), file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files)} experiment(s) failed the check", file=sys.stderr)
    return 1 if failed else 0


def _immutability(ws: Workspace, base: str | None, announce: bool) -> dict[str, list[Problem]]:
    """Changes to submitted runs against ``base``, else the last pushed state (the upstream
    branch, whose runs_status.yaml the watcher pushed), by plan file; outside git, nothing.
    ``announce``: say so when a repository's branch has no upstream to compare with and
    some run was submitted (before that there is nothing to protect, and nothing to say)."""
    from tunegit.edges.gitinfo import head_commit, upstream
    from tunegit.edges.plandiff import immutability_problems

    base = base or upstream(ws.root)
    if base is None:
        if announce and _any_submitted(ws) and head_commit(ws.root) is not None:
            out("note: this branch has no upstream, so changes to submitted runs are checked "
                "in CI only (`git branch --set-upstream-to origin/main` checks them here)")
        return {}
    by_file: dict[str, list[Problem]] = {}
    for p in immutability_problems(ws, base):
        by_file.setdefault(p.file, []).append(p)
    return by_file


def _any_submitted(ws: Workspace) -> bool:
    for name in ws.experiments():
        try:
            status = read_status(ws.experiment_dir(name) / STATUS_FILE)
        except (status_mod.StatusFormatError, ValueError):
            continue
        if status is not None and any(step.job_id for _, _, step in status.steps()):
            return True
    return False
