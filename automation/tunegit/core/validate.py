"""The checklist a plan passes before it runs, as a pure function of plan, site and expansion:
unique run names, every run evaluated on known tasks, evaluated epochs that exist, one system
prompt for training and evaluation, a batch size per model, models torchtune knows."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from pydantic import ValidationError

from tunegit.core.expand import VALID_NAME, Expansion, coerce_level, factor_levels, pattern_fields
from tunegit.errors import Problem
from tunegit.spec import models
from tunegit.spec.loader import Located
from tunegit.spec.plan import MAX_RUNS, TRAINING_FACTOR_KEYS, Plan

FACTOR_KEYS = ("model", "dataset", *TRAINING_FACTOR_KEYS)


@dataclasses.dataclass(frozen=True)
class Findings:
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.errors + other.errors, self.warnings + other.warnings)


def check_structure(plan: Plan, doc: Located) -> list[Problem]:
    """Checks needed before expansion can run at all."""
    problems = []
    for key in plan.factors:
        if key not in FACTOR_KEYS:
            problems.append(doc.problem(("factors", key), f"{key!r} cannot be a factor",
                                        hint=f"factors may be: {', '.join(FACTOR_KEYS)}"))
        elif not plan.factors[key]:
            problems.append(doc.problem(("factors", key), "needs at least one level"))
        else:
            problems += _levels(doc, key, plan.factors[key])
    runs = math.prod(len(v) or 1 for k, v in factor_levels(plan))
    if runs > MAX_RUNS:
        problems.append(doc.problem(("factors",), f"the factors make {runs} runs; the limit is "
                                    f"{MAX_RUNS}",
                                    hint="split the experiment, or use fewer levels"))
    short = {models.short_name(m) for m in plan.models} | set(plan.models)
    for i, level in enumerate(plan.factors.get("model", [])):
        if str(level) not in short:
            problems.append(doc.problem(("factors", "model", i), f"{level!r} is not in `models`",
                                        hint=f"use one of: {', '.join(sorted(short))}"))
    known = {k for k, _ in factor_levels(plan)} if not problems else set(FACTOR_KEYS)
    if plan.run_name is not None:
        try:
            fields = pattern_fields(plan.run_name)
        except ValueError as exc:
            return [*problems, doc.problem(("run_name",), f"not a valid pattern: {exc}",
                                           hint="write factors as {name}, e.g. "
                                           "{model}_rank{lora_rank}; double braces for a literal")]
        for field in fields:
            if field not in known:
                problems.append(doc.problem(
                    ("run_name",), f"{{{field}}} is not a factor of this plan",
                    hint=f"use the factors: {', '.join('{' + k + '}' for k in sorted(known))}"))
    return problems


def _levels(doc: Located, key: str, levels: list[Any]) -> list[Problem]:
    """Each level must be a value the factor's training key accepts."""
    problems = []
    for i, level in enumerate(levels):
        try:
            coerce_level(key, level)
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            problems.append(doc.problem(("factors", key, i), f"level {level!r}: {message}",
                                        hint=f"each level must be a valid `training.{key}`"
                                        if key in TRAINING_FACTOR_KEYS else "write a string"))
    return problems


def check_plan(plan: Plan, doc: Located, exp: Expansion,
               catalog: models.Catalog | None = None) -> Findings:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    errors += _names(plan, doc, exp)
    errors += _matrix(plan, doc, exp)
    errors += _epochs(plan, doc, exp)
    errors += _consistency(plan, doc)
    errors += _models(plan, doc, catalog)
    if plan.type == "experiment" and not plan.controls:
        warnings.append(doc.problem(("controls",), "no base-model controls",
                                    hint="set `controls: true` to measure the effect of "
                                    "fine-tuning"))
    return Findings(tuple(errors), tuple(warnings))


def _names(plan: Plan, doc: Located, exp: Expansion) -> list[Problem]:
    where = ("run_name",) if plan.run_name else ("factors",)
    counts = Counter(r.name for r in exp.runs)
    problems = [doc.problem(where, f"run name {name!r} is produced {n} times",
                            hint="add the varying factors to `run_name`")
                for name, n in counts.items() if n > 1]
    problems += [doc.problem(where, f"run name {r.name!r} has characters outside [A-Za-z0-9._-]",
                             hint="change `run_name` or the factor levels")
                 for r in exp.runs if not VALID_NAME.match(r.name)]
    problems += [doc.problem(where, f"run name {r.name!r} starts with '.': a run directory "
                             "would be hidden, or the parent directory",
                             hint="start run names with a letter or digit")
                 for r in exp.runs if r.name.startswith(".")]
    tasks = Counter(t.name for t in plan.evaluation.tasks)
    problems += [doc.problem(("evaluation", "tasks"), f"task name {name!r} is used {n} times")
                 for name, n in tasks.items() if n > 1]
    return problems


def _matrix(plan: Plan, doc: Located, exp: Expansion) -> list[Problem]:
    problems = []
    runs = {r.name for r in exp.runs}
    tasks = {t.name for t in plan.evaluation.tasks}
    for run, wanted in (plan.evaluation.matrix or {}).items():
        path = ("evaluation", "matrix", run)
        if run not in runs:
            problems.append(doc.problem(path, f"names unknown run {run!r}",
                                        hint=f"runs are: {', '.join(sorted(runs))}"))
        for i, task in enumerate(wanted):
            if task not in tasks:
                problems.append(doc.problem((*path, i), f"names unknown task {task!r}",
                                            hint=f"tasks are: {', '.join(sorted(tasks))}"))
    evaluated = {e.run for e in exp.evaluations}
    for run in sorted(runs - evaluated):
        problems.append(doc.problem(("evaluation", "matrix", run),
                                    f"run {run!r} is never evaluated",
                                    hint="give it at least one task in the matrix"))
    return problems


def _epochs(plan: Plan, doc: Located, exp: Expansion) -> list[Problem]:
    choice = plan.evaluation.epochs
    problems = []
    if choice == "best" and not any(r.validation for r in exp.finetuned):
        problems.append(doc.problem(("evaluation", "epochs"),
                                    "`best` needs validation during training",
                                    hint="set `training.validation: true` or choose last | all"))
    if isinstance(choice, list):
        fewest = min((r.epochs for r in exp.finetuned), default=0)
        for i, epoch in enumerate(choice):
            if epoch >= fewest:
                problems.append(doc.problem(
                    ("evaluation", "epochs", i),
                    f"epoch {epoch} does not exist: runs train {fewest} epoch(s), "
                    f"numbered 0..{fewest - 1}",
                    hint="epochs are 0-based; use `last` for the final one"))
    return problems


def _consistency(plan: Plan, doc: Located) -> list[Problem]:
    problems = []
    prompt = plan.evaluation.system_prompt
    if prompt is not None and prompt != plan.training.system_prompt:
        problems.append(doc.problem(("evaluation", "system_prompt"),
                                    "differs from training.system_prompt",
                                    hint="training and evaluation must share the system prompt; "
                                    "remove this key to reuse the training one"))
    if "system_prompt" in plan.factors:
        problems.append(doc.problem(("factors", "system_prompt"),
                                    "a varying system prompt is not supported yet",
                                    hint="run one experiment per system prompt"))
    if isinstance(plan.training.batch_size, dict):
        known = {models.short_name(m) for m in plan.models} | {"default"}
        for key in plan.training.batch_size:
            if key not in known:
                problems.append(doc.problem(("training", "batch_size", key),
                                            f"{key!r} is not a model of this plan",
                                            hint=f"use: {', '.join(sorted(known))}"))
        missing = [m for m in (models.short_name(x) for x in plan.models)
                   if m not in plan.training.batch_size]
        if missing and "default" not in plan.training.batch_size:
            problems.append(doc.problem(("training", "batch_size"),
                                        f"no batch size for {', '.join(missing)}",
                                        hint="add a `default:` entry"))
    return problems


def _models(plan: Plan, doc: Located, catalog: models.Catalog | None) -> list[Problem]:
    if plan.tools.preparation != "torchtune":
        return []
    return [doc.problem(("models", i), f"torchtune has no known components for {m!r}",
                        hint=models.unknown_hint(m, catalog))
            for i, m in enumerate(plan.models) if models.lookup(m, catalog) is None]
