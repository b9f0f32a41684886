"""An evaluation task's arguments: the plan's ``args`` filled in, checked against the task.

An existing inspect task runs unchanged: the plan names its parameters under
``evaluation.tasks[].args``, and string values may use the placeholders below, filled in
per evaluation (the dataset as the job sees it, the split, the run's system prompt, the
plan's max_tokens). Without ``args`` a task gets tunegit's own three parameters,
``data_file``, ``split`` and ``system_prompt``.

Before anything is submitted, the arguments are checked against the task's signature as
the script's source defines it (read with ``ast``, never imported): every name must be a
parameter (unless the task takes ``**kwargs``), and every parameter without a default must
be given. A task the reader cannot find (made at run time) is not checked. Pure.
"""

from __future__ import annotations

import ast
import dataclasses
import string
from collections.abc import Mapping
from typing import Any

PLACEHOLDERS = ("dataset_path", "split", "system_prompt", "max_tokens")
PLACEHOLDER_TEXT = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)  # as messages show them
DEFAULT_KEYS = ("data_file", "split", "system_prompt")


def placeholders(value: Any) -> list[str]:
    """The ``{name}`` fields in a string value (``{{``/``}}`` are literal braces)."""
    if not isinstance(value, str):
        return []
    return [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]


def unknown_placeholders(args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, field) for each placeholder that is not one of PLACEHOLDERS."""
    return [(key, field) for key, value in args.items() for field in placeholders(value)
            if field not in PLACEHOLDERS]


def fill(args: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments with each string's placeholders replaced (other values as they are)."""
    return {key: value.format_map(values) if isinstance(value, str) else value
            for key, value in args.items()}


@dataclasses.dataclass(frozen=True)
class TaskSignature:
    function: str
    parameters: tuple[str, ...]
    required: tuple[str, ...]  # parameters without a default
    any_keyword: bool  # takes **kwargs


class TaskNotFound(ValueError):
    """The script defines no @task function by that name (or several, and none was named)."""


def _is_task_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Name) and target.id == "task") or (
        isinstance(target, ast.Attribute) and target.attr == "task")


def _registered_name(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    for deco in fn.decorator_list:
        if isinstance(deco, ast.Call) and _is_task_decorator(deco):
            for kw in deco.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
    return fn.name


def task_signature(source: str, name: str | None) -> TaskSignature | None:
    """The @task function ``name`` (or the only one) in ``source``; None when the source has
    no @task function at all (tasks made at run time cannot be checked here).

    Raises TaskNotFound for a name the source does not define, or several tasks and no name;
    SyntaxError when the source does not parse."""
    tree = ast.parse(source)
    tasks = [node for node in tree.body
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
             and any(_is_task_decorator(d) for d in node.decorator_list)]
    if not tasks:
        return None
    names = [_registered_name(fn) for fn in tasks]
    if name is None:
        if len(tasks) > 1:
            raise TaskNotFound(f"defines several tasks ({', '.join(names)})")
        fn = tasks[0]
    elif name in names:
        fn = tasks[names.index(name)]
    else:
        raise TaskNotFound(f"defines no task {name!r} (it has: {', '.join(names)})")
    a = fn.args
    positional = [p.arg for p in (*a.posonlyargs, *a.args)]
    with_default = set(positional[len(positional) - len(a.defaults):]) if a.defaults else set()
    keyword = [p.arg for p in a.kwonlyargs]
    required = [p for p in positional if p not in with_default]
    required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    return TaskSignature(_registered_name(fn), tuple(positional + keyword), tuple(required),
                         a.kwarg is not None)


def argument_problems(sig: TaskSignature, given: list[str]) -> list[tuple[str | None, str]]:
    """(argument or None, message) for each name the task does not take and each required
    parameter not given."""
    out: list[tuple[str | None, str]] = []
    for key in given:
        if key not in sig.parameters and not sig.any_keyword:
            out.append((key, f"task {sig.function} has no parameter {key!r} (it takes: "
                             f"{', '.join(sig.parameters) or 'none'})"))
    missing = [p for p in sig.required if p not in given]
    if missing:
        out.append((None, f"task {sig.function} requires {', '.join(map(repr, missing))} "
                          "(no default), not given"))
    return out
