"""Turn pydantic validation errors into located, compiler-style problems."""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunegit.errors import PlanError, Problem
from tunegit.spec.loader import FieldPath, Located, format_path

M = TypeVar("M", bound=BaseModel)


def parse_model(located: Located, cls: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate ``located.data`` as ``cls`` (validators see ``context``); raise PlanError
    listing every problem, located."""
    if not isinstance(located.data, dict):
        raise PlanError(problems=[Problem(
            located.file, f"expected a mapping of keys (like `name: ...`), got "
            f"{type(located.data).__name__}", 1, 1, hint="see `tunegit schema` for the keys")])
    try:
        return cls.model_validate(located.data, context=context)
    except ValidationError as exc:
        errors = _drop_union_noise(located, list(exc.errors()))
        problems = [_problem(located, cls, err) for err in errors]
        raise PlanError(problems=_merge(problems)) from None


def _drop_union_noise(located: Located, errors: list[Any]) -> list[Any]:
    """For a value matching no branch of a union, keep only the deepest branch's errors."""
    paths = [_data_path(located, tuple(e["loc"]), e["type"]) for e in errors]
    return [e for e, p in zip(errors, paths, strict=True)
            if not any(len(q) > len(p) and q[: len(p)] == p for q in paths)]


def _merge(problems: list[Problem]) -> list[Problem]:
    """One problem per location: union alternatives become `... or ...`."""
    merged: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        key = (p.line, p.col, p.field)
        if key in merged and p.message not in merged[key].message:
            old = merged[key]
            merged[key] = Problem(p.file, f"{old.message}, or {_lower(p.message)}", p.line, p.col,
                                  p.field, old.hint)
        else:
            merged.setdefault(key, p)
    return sorted(merged.values(), key=lambda p: (p.line or 0, p.col or 0))


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _data_path(located: Located, loc: tuple[Any, ...], kind: str) -> FieldPath:
    """Drop pydantic's union tags (e.g. 'int', 'dict[str,int]') that are not in the data."""
    path: list[str | int] = []
    node: Any = located.data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)):
            path.append(part)
            node = node[part]
        elif (kind in ("missing", "extra_forbidden") and isinstance(node, dict)
              and part is loc[-1]):
            path.append(part)  # a missing or unknown key: point at its parent, name it
        else:
            continue
    return tuple(path)


def _model_at(cls: type[BaseModel], path: FieldPath) -> type[BaseModel] | None:
    current: Any = cls
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, typing.Annotated) or origin is None:
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _problem(located: Located, cls: type[BaseModel], err: Any) -> Problem:
    path = _data_path(located, tuple(err["loc"]), err["type"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(cls, path[:-1])
        valid = ", ".join(parent.model_fields) if parent else ""
        line, col = located.key_positions.get(path, located.where(path))
        return Problem(located.file, f"unknown key {path[-1]!r}", line, col, format_path(path),
                       hint=f"valid keys here are: {valid}" if valid else "remove it")
    if kind == "missing":
        line, col = located.where(path[:-1])
        return Problem(located.file, "required key is missing", line, col, format_path(path),
                       hint=f"add `{path[-1]}:` (see `tunegit schema`)")
    line, col = located.where(path)
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "Input should be a mapping of keys"  # not pydantic's "instance of Training"
    if kind == "string_pattern_mismatch":
        message = "may only contain letters, digits, '.', '_' and '-'"
        return Problem(located.file, message, line, col, format_path(path),
                       hint="e.g. cap_8L_lora_comparison_2025-10-22")
    return Problem(located.file, message, line, col, format_path(path) or "(top level)",
                   hint=_hint(kind, err))


def _hint(kind: str, err: Any) -> str:
    if "hint" in (err.get("ctx") or {}):  # a validator's own way out
        return str(err["ctx"]["hint"])
    if kind.startswith("literal_error"):
        return f"use one of: {err.get('ctx', {}).get('expected', '')}"
    if kind in ("int_parsing", "int_type", "float_parsing", "float_type"):
        return "write a number without quotes"
    if kind in ("bool_parsing", "bool_type"):
        return "write true or false"
    if kind in ("string_type",):
        return "quote the value"
    if kind in ("list_type",):
        return "write a list, e.g. [a, b]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write a mapping of keys"
    return "see `tunegit schema` for the expected form"
