"""Preflight: what each step's job needs, looked for on the machine that submits it.

Before anything is submitted, each pending step is checked for what its job will need:
the base model's directory with its config.json, the task script tracked in git (the job
runs the committed plan), and the program it runs (`tune` for fine-tuning, `inspect` for
evaluation) on the job environment's PATH. Datasets and their splits are checked with the
plan itself (``edges.verify``): a plan lacking one cannot run at all.

Only what this machine can see is checked: a site path whose jobs run here (the local
executor), that is relative (inside the repository) or whose directory exists here; and
the programs only where the site sets up
no environment of its own (``environment.modules`` / ``activate`` run on the job host).
The result maps (run, key) to the reason, naming the fix; the reconcile blocks those steps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tunegit.core.expand import Expansion
from tunegit.edges.workspace import Workspace
from tunegit.executors import backend
from tunegit.executors.base import job_environment
from tunegit.spec.site import Site, expand_path

Held = dict[tuple[str, str | None], str]
TRAIN_EXTRA = "pip install 'tunegit[train]'"
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
SITE_PATHS = ("models_dir", "data_dir", "output_dir")


def unset_variables(site: Site) -> str | None:
    """Why the site's paths cannot be used here: the $VARS they name that are not set."""
    found = {field: [a or b for a, b in VARIABLE.findall(getattr(site, field))
                     if (a or b) not in os.environ] for field in SITE_PATHS}
    named = [f"{field} uses ${', $'.join(names)}" for field, names in found.items() if names]
    if not named:
        return None
    return (f"sites/{site.name}.yaml: {'; '.join(named)}, not set where tunegit submits: set "
            "it in the environment tunegit runs in, or write the path out")


def visible_here(ws: Workspace, site: Site, value: str) -> bool:
    """Whether a site path can be checked from this machine: the site's jobs run here, the
    path is relative to the repository, or it is a directory that exists here."""
    return (backend(site.executor).jobs_run_here(site)
            or not Path(expand_path(value)).is_absolute() or ws.site_dir(value).is_dir())


def model_problem(ws: Workspace, site: Site, model: str) -> str | None:
    """Why the base model's directory is not usable, or None (also when not visible)."""
    if not visible_here(ws, site, site.models_dir):
        return None
    config = ws.site_dir(site.models_dir) / model / "config.json"
    if config.is_file():
        return None
    shown = f"{site.models_dir.rstrip('/')}/{model}/config.json"
    return (f"base model {shown} is missing: run `tunegit tiny-model --site {site.name}` for "
            f"the demo's tiny models, or download {model} into that directory")


def untracked(root: Path, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` git does not track in ``root`` (none outside a git repository)."""
    wanted = sorted(set(paths))
    if not wanted:
        return set()
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", *wanted],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    if proc.returncode != 0:
        return set()
    tracked = set(proc.stdout.split("\0"))
    return {p for p in wanted if Path(p).as_posix() not in tracked}


def program_problem(site: Site, program: str) -> str | None:
    """Why a job of this site would not find ``program``, where that is visible here."""
    if site.environment.modules or site.environment.activate:
        return None  # the job host's own setup provides it; not visible from here
    if shutil.which(program, path=job_environment().get("PATH")) is not None:
        return None
    return (f"`{program}` is not installed for the jobs' Python: {TRAIN_EXTRA} into the "
            "environment tunegit runs from")


def preflight(ws: Workspace, site: Site, exp: Expansion, steps: Iterable[tuple[str, str | None]],
              ) -> Held:
    """(run, key) of each of ``steps`` (the pending or held ones) -> why its job cannot run."""
    steps = list(steps)
    unset = unset_variables(site)
    if unset is not None:  # every path below would be looked up in the wrong place
        return dict.fromkeys(steps, unset)
    runs = {run.name: run for run in exp.runs}
    evaluations = {(e.run, e.key): e for e in exp.evaluations}
    scripts = untracked(ws.root, {e.script for e in exp.evaluations})
    models = {m: model_problem(ws, site, m) for m in {r.model for r in exp.runs}}
    programs = {p: program_problem(site, p) for p in ("tune", "inspect")}
    held: Held = {}
    for run_name, key in steps:
        run = runs.get(run_name)
        if run is None:
            continue
        reasons = [models[run.model]]
        if key is None:
            reasons.append(None if run.is_control else programs["tune"])
        else:
            ev = evaluations.get((run_name, key))
            if ev is not None and ev.script in scripts:
                reasons.append(f"task script {ev.script} is not tracked in git: `git add "
                               f"{ev.script}` and commit it")
            reasons.append(programs["inspect"])
        found = [r for r in reasons if r]
        if found:
            held[(run_name, key)] = "; ".join(dict.fromkeys(found))
    return held
