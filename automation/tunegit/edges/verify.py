"""Resource verification: the base models, datasets and eval scripts a plan needs to run.

This is an edge (it reads the filesystem). Where a path is not visible from this
machine (a CI runner cannot see the cluster's scratch), the check says
"not verifiable here" instead of failing; on a site whose jobs run on this machine, or
for a path inside the repository, what is not there is "missing".
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from tunegit.core.checks import NOT_VERIFIABLE, Check, DatasetInfo, Verification
from tunegit.core.expand import Expansion
from tunegit.core.taskargs import (
    DEFAULT_KEYS,
    PLACEHOLDER_TEXT,
    TaskNotFound,
    argument_problems,
    task_signature,
    unknown_placeholders,
)
from tunegit.edges.preflight import visible_here
from tunegit.edges.workspace import Workspace
from tunegit.errors import Problem
from tunegit.executors import backend
from tunegit.spec import models
from tunegit.spec.loader import Located
from tunegit.spec.plan import EvalTask, Plan
from tunegit.spec.site import Site


def read_dataset(path: Path, shown: str) -> DatasetInfo:
    """Split sizes of a tunegit dataset file ({split: [{input, output}, ...]})."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError("expected an object of splits, e.g. {\"train\": [...], \"test\": [...]}")
    rows = [r for split in data.values() for r in split if isinstance(r, dict)]
    chars = [len(str(r.get("input", ""))) + len(str(r.get("output", ""))) for r in rows]
    return DatasetInfo(shown, str(path), path.stat().st_size,
                       tuple((k, len(v)) for k, v in data.items()),
                       sum(chars) / len(chars) if chars else 0.0, float(max(chars, default=0)))


def _inside(path: Path, *roots: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies under one of ``roots`` (resolved too)."""
    real = path.resolve()
    return any(real.is_relative_to(root.resolve()) for root in roots)


def _find_dataset(ws: Workspace, site: Site, rel: str) -> tuple[Path | None, bool]:
    """(path if found, whether every place it could be was visible)."""
    candidates = [ws.root / rel]
    visible = True
    if site.data_dir:
        data_dir = ws.site_dir(site.data_dir)
        visible = visible_here(ws, site, site.data_dir)
        candidates.append(data_dir / rel)
    absolute = Path(rel)
    if absolute.is_absolute():
        candidates = [absolute]
        visible = absolute.parent.is_dir() or backend(site.executor).jobs_run_here(site)
    return next((c for c in candidates if c.is_file()), None), visible


def _config_disagreement(path: Path, model: str, catalog: models.Catalog | None) -> str | None:
    """What the model directory's config.json says against the catalog entry, if it differs."""
    info = models.lookup(model, catalog)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "config.json is not readable JSON"
    if info is None or not isinstance(config, dict):
        return None
    return models.config_disagreement(info, config)


def verify(ws: Workspace, plan: Plan, site: Site, exp: Expansion, doc: Located,
           catalog: models.Catalog | None = None) -> Verification:
    checks: list[Check] = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    models_dir = ws.site_dir(site.models_dir)
    for i, model in enumerate(dict.fromkeys(r.model for r in exp.runs)):
        target = models_dir / model
        shown = f"{site.models_dir.rstrip('/')}/{model}"
        if not visible_here(ws, site, site.models_dir):
            checks.append(Check("VERIFY_MODEL", model, f"ls {shown}", NOT_VERIFIABLE, None,
                                "the site's models_dir is not visible from this machine"))
        elif (target / "config.json").is_file():
            n = sum(1 for _ in target.iterdir())
            checks.append(Check("VERIFY_MODEL", model, f"ls {shown}",
                                f"directory exists with {n} files", True,
                                "base model present before planning runs on it"))
            disagreement = _config_disagreement(target / "config.json", model, catalog)
            if disagreement:
                warnings.append(doc.problem(
                    ("models", i), f"{shown}: {disagreement}",
                    hint=f"check that the directory holds {model}, or correct its entry in "
                    f"{models.LAB_FILE} (docs/models.md)"))
        else:
            checks.append(Check("VERIFY_MODEL", model, f"ls {shown}", "missing", False,
                                "a prerequisite: download or create it before submitting"))
            warnings.append(doc.problem(("models", i), f"model directory {shown} is missing",
                                        hint="download it (or `tunegit tiny-model` for the demo) "
                                        "before `tunegit run`"))
    datasets: dict[str, DatasetInfo] = {}
    for rel, (needed, where) in _dataset_needs(plan, exp).items():
        info, check, problem = _verify_dataset(ws, site, rel, needed, doc, where)
        checks.append(check)
        if info:
            datasets[rel] = info
        if problem:
            errors.append(problem)
    for i, task in enumerate(plan.evaluation.tasks):
        path = ws.root / task.script
        ok = path.is_file()
        if ok and not _inside(path, ws.root):
            errors.append(doc.problem(("evaluation", "tasks", i, "script"),
                                      f"{task.script} resolves outside the repository "
                                      f"(to {path.resolve()}): a symlink out of its root",
                                      hint="commit the task script itself, not a link to it"))
            continue
        checks.append(Check("VERIFY_EVAL_SCRIPT", task.name, f"ls {task.script}",
                            "file exists" if ok else "missing", ok,
                            "the inspect-ai task every evaluation of this task runs"))
        if not ok:
            errors.append(doc.problem(("evaluation", "tasks", i, "script"),
                                      f"{task.script} does not exist in the repository",
                                      hint="commit the task script, or fix the path"))
            continue
        errors += _task_arguments(path, task, i, doc)
    return Verification(tuple(checks), datasets, tuple(errors), tuple(warnings))


def _task_arguments(path: Path, task: EvalTask, i: int, doc: Located) -> list[Problem]:
    """The plan's arguments against the task's own signature, read from its source."""
    where = ("evaluation", "tasks", i)
    args = task.args
    out = [doc.problem((*where, "args", key), f"unknown placeholder {{{field}}}",
                       hint=f"placeholders: {PLACEHOLDER_TEXT}; "
                       "write a literal brace as {{ or }}")
           for key, field in unknown_placeholders(args or {})]
    try:
        sig = task_signature(path.read_text(encoding="utf-8"), task.task)
    except TaskNotFound as exc:
        return [*out, doc.problem((*where, "task") if task.task else (*where, "script"),
                                  f"{task.script} {exc}",
                                  hint="name the @task function with `task:`")]
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        return [*out, doc.problem((*where, "script"), f"{task.script} cannot be read as "
                                  f"Python: {exc}", hint="fix the script")]
    if sig is None:
        return out
    given = list(args) if args is not None else list(DEFAULT_KEYS)
    for key, message in argument_problems(sig, given):
        if args is None:
            out.append(doc.problem(
                (*where, "script"), f"{message}; without `args:` a task gets "
                f"{', '.join(DEFAULT_KEYS)}",
                hint="pass the task's own parameters under `args:` (values may use "
                f"{PLACEHOLDER_TEXT})"))
        else:
            out.append(doc.problem((*where, "args", key) if key else (*where, "args"), message,
                                   hint="name the task's parameters under `args:`"))
    return out


def _dataset_needs(plan: Plan, exp: Expansion) -> dict[str, tuple[set[str], tuple[Any, ...]]]:
    """Each dataset -> the splits it must have, and where the plan names it."""
    needs: dict[str, tuple[set[str], tuple[Any, ...]]] = {}
    for run in exp.runs:
        splits, _ = needs.setdefault(run.dataset, (set(), ("dataset", "path")))
        if not run.is_control:
            splits.add("train")
            if run.validation:
                splits.add("validation")
    for i, task in enumerate(plan.evaluation.tasks):
        if task.dataset == "training":
            for run in exp.runs:
                needs[run.dataset][0].add(task.split)
        else:
            needs.setdefault(task.dataset, (set(), ("evaluation", "tasks", i, "dataset")))[0].add(
                task.split)
    return needs


# The name `tunegit dataset capitalization` gives its files (generators/datagen.file_name).
_GENERATED = re.compile(r"words_(?P<letters>\d+)L_80P_(?P<words>\d+)\.json")


def missing_dataset_hint(rel: str) -> str:
    """The command that makes a missing dataset, where its name says it is a generated one."""
    match = _GENERATED.fullmatch(Path(rel).name)
    if match is None:
        return "fix the path, or add the file (a {train, validation, test} JSON)"
    command = (f"tunegit dataset capitalization --letters {int(match['letters'])} "
               f"--words {int(match['words'])}")
    parent = Path(rel).parent.as_posix()
    if parent != "tasks/capitalization/input":
        command += f" --out-dir {shlex.quote(parent)}"
    return f"make it with `{command}`, or fix the path"


def _verify_dataset(ws: Workspace, site: Site, rel: str, needed: set[str], doc: Located,
                    where: tuple[Any, ...]) -> tuple[DatasetInfo | None, Check, Problem | None]:
    found, visible = _find_dataset(ws, site, rel)
    command = f"ls -lh {rel}"
    if found is None:
        if not visible:
            return None, Check("VERIFY_DATASET", rel, command, NOT_VERIFIABLE, None,
                               "the site's data_dir is not visible from this machine"), None
        return None, Check("VERIFY_DATASET", rel, command, "missing", False, "training data"), \
            doc.problem(where, f"dataset {rel} not found",
                        hint=missing_dataset_hint(rel))
    roots = [ws.root] + ([ws.site_dir(site.data_dir)] if site.data_dir else [])
    if not Path(rel).is_absolute() and not _inside(found, *roots):
        return None, Check("VERIFY_DATASET", rel, command, "outside its root", False, ""), \
            doc.problem(where, f"dataset {rel} resolves outside the repository and data_dir "
                        f"(to {found.resolve()}): a symlink out of its root",
                        hint="commit the dataset itself, or name it by its absolute path")
    try:
        info = read_dataset(found, rel)
    except (ValueError, OSError, RecursionError) as exc:
        return None, Check("VERIFY_DATASET", rel, command, f"unreadable: {exc}", False, ""), \
            doc.problem(where, f"dataset {rel} is not a tunegit dataset: {exc}")
    splits = ", ".join(f"{k} ({n})" for k, n in info.splits)
    check = Check("VERIFY_DATASET", rel, command,
                  f"file exists, {info.size_bytes / 1024:.0f} KB; splits: {splits}", True,
                  "training data with the splits the plan needs")
    missing = sorted(needed - {k for k, n in info.splits if n > 0})
    problem = doc.problem(where, f"dataset {rel} lacks the split(s) {', '.join(missing)}",
                          hint="regenerate it with train/validation/test splits"
                          ) if missing else None
    return info, check, problem
