"""Load YAML safely, keeping where every value came from.

``load_yaml`` returns the data and a map from field path to (line, column), so
every later error can point at ``FILE:LINE:COL``. It refuses duplicate keys,
non-standard tags (``!!python/object``), alias bombs, binary junk and huge
files with a located error instead of a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tunegit.errors import PlanError, Problem

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
FieldPath = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Located:
    """Parsed YAML plus the 1-based (line, col) of every value and key."""

    file: str
    data: Any
    positions: dict[FieldPath, tuple[int, int]]
    key_positions: dict[FieldPath, tuple[int, int]]

    def where(self, path: FieldPath) -> tuple[int | None, int | None]:
        """Position of the deepest known prefix of ``path``."""
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            if cut < len(path) and prefix + (path[cut],) in self.key_positions:
                return self.key_positions[prefix + (path[cut],)]
            if prefix in self.positions:
                return self.positions[prefix]
        return None, None

    def problem(self, path: FieldPath, message: str, hint: str = "") -> Problem:
        line, col = self.where(path)
        return Problem(self.file, message, line, col, format_path(path), hint)


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.positions: dict[FieldPath, tuple[int, int]] = {}
        self.key_positions: dict[FieldPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.constructor = SafeConstructor()

    def mark(self, node: Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def build(self, node: Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise PlanError(problems=[Problem(
                self.file, f"more than {MAX_NODES} values (an alias bomb?)", *self.mark(node),
                hint="a plan needs far fewer values; remove YAML aliases (*name)")])
        self.positions[path] = self.mark(node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                return self._bad_tag(node, path)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _bad_tag(self, node: Node, path: FieldPath) -> None:
        self.problems.append(Problem(
            self.file, f"tag {node.tag!r} is not allowed", *self.mark(node), format_path(path),
            hint="plans are plain YAML: remove the tag"))
        return None

    def _scalar(self, node: Node, path: FieldPath) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.problems.append(Problem(
                self.file, (exc.problem or "cannot read this value").strip(), *self.mark(node),
                format_path(path), hint="plans are plain YAML: remove the tag"))
            return None

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[Any, Any] | None:
        if node.tag != "tag:yaml.org,2002:map":
            return self._bad_tag(node, path)
        out: dict[Any, Any] = {}
        for key_node, value_node in self._pairs(node, path):
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.file, "keys must be plain names",
                                             *self.mark(key_node), format_path(path)))
                continue
            key = self._scalar(key_node, path)
            key = key if isinstance(key, str | int) else str(key)
            if key in out:
                first = self.key_positions[(*path, key)]
                self.problems.append(Problem(
                    self.file, f"duplicate key {key!r} (first at line {first[0]})",
                    *self.mark(key_node), format_path((*path, key)),
                    hint="remove one of them: YAML would silently keep the last"))
                continue
            self.key_positions[(*path, key)] = self.mark(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _pairs(self, node: MappingNode, path: FieldPath) -> Iterator[tuple[Node, Node]]:
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(Problem(self.file, "merge keys (<<) are not supported",
                                             *self.mark(key_node), format_path(path),
                                             hint="write the keys out"))
                continue
            yield key_node, value_node


def load_text(text: str, file: str) -> Located:
    """Parse YAML text; raises PlanError with every problem found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = f"YAML syntax error: {exc.problem or exc.context}"
        raise PlanError(problems=[Problem(file, message, line, col, hint=(
            "check indentation and quoting near this line; quote values containing ': ' or '#'"))]
        ) from None
    except yaml.YAMLError as exc:
        raise PlanError(problems=[Problem(file, f"YAML error: {exc}")]) from None
    if node is None:
        raise PlanError(problems=[Problem(file, "the file is empty", 1, 1,
                                          hint="run `tunegit new NAME` for a commented skeleton")])
    builder = _Builder(file)
    data = builder.build(node, ())
    if builder.problems:
        raise PlanError(problems=builder.problems)
    return Located(file, data, builder.positions, builder.key_positions)


def read_text(path: Path, display: str) -> str:
    """Read a small UTF-8 text file or raise a PlanError saying what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(problems=[Problem(display, "no such file")]) from None
    except IsADirectoryError:
        raise PlanError(problems=[Problem(display, "is a directory, not a file")]) from None
    except OSError as exc:
        raise PlanError(problems=[Problem(display, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise PlanError(problems=[Problem(display, f"file is {len(raw)} bytes; the limit is "
                                          f"{MAX_BYTES}", hint="a plan is a few KB of YAML")])
    if b"\x00" in raw:
        raise PlanError(problems=[Problem(display, "binary content (NUL bytes); not a YAML file")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlanError(problems=[Problem(display, "not valid UTF-8 text", line,
                                          hint="save the file as UTF-8")]) from None


def load_file(path: Path, display: str | None = None) -> Located:
    shown = display or str(path)
    return load_text(read_text(path, shown), shown)
