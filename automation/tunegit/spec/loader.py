"""Load YAML safely, keeping where every value came from.

``load_yaml`` returns the data and a map from field path to (line, column), so
every later error can point at ``FILE:LINE:COL``. It refuses duplicate keys,
non-standard tags (``!!python/object``), alias bombs, binary junk and huge
files with a located error instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tunegit.errors import PlanError, Problem

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
_YAML = "tag:yaml.org,2002:"
# Scalars a plan may hold: what plain YAML resolves to. `!!binary`, `!!python/...`, `!foo`
# and every other explicit tag are refused.
PLAIN_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null",
                                                  "timestamp"))
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
            keyed = (*prefix, path[cut]) if cut < len(path) else None
            if keyed is not None and keyed in self.key_positions:
                return self.key_positions[keyed]
            if prefix in self.positions:
                return self.positions[prefix]
        return None, None

    def problem(self, path: FieldPath, message: str, hint: str = "") -> Problem:
        line, col = self.where(path)
        return Problem(self.file, message, line, col, format_path(path), hint)


def format_path(path: FieldPath) -> str:
    """``("training", "batch_size")`` -> ``training.batch_size``; odd keys are shown quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if part.isprintable() and part.strip() == part and part else repr(part)
        out += f".{name}" if out else name
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
        if len(path) > MAX_DEPTH:
            raise PlanError(problems=[Problem(
                self.file, f"nested more than {MAX_DEPTH} levels deep (a recursive alias?)",
                *self.mark(node), format_path(path[:3]) + "...",
                hint="a plan is a few levels deep; remove self-referencing aliases")])
        self.positions[path] = self.mark(node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                return self._bad_tag(node, path)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _bad_tag(self, node: Node, path: FieldPath) -> Any:
        self.problems.append(Problem(
            self.file, f"tag {node.tag!r} is not allowed", *self.mark(node), format_path(path),
            hint="plans are plain YAML: remove the tag"))
        return None

    def _scalar(self, node: Node, path: FieldPath, *, is_key: bool = False) -> Any:
        if node.tag not in PLAIN_SCALAR_TAGS:
            return self._bad_tag(node, path)
        if not is_key and _surprising_number(node):
            return self._surprise(node, path)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError, OverflowError) as exc:
            message = (exc.problem if isinstance(exc, ConstructorError) else str(exc)) or ""
            self.problems.append(Problem(
                self.file, f"cannot read this value: {message.strip()}", *self.mark(node),
                format_path(path), hint="write a plain number, string, true/false or null"))
            return None
        if isinstance(value, str) and _UNWRITABLE.search(value):
            self.problems.append(Problem(
                self.file, "contains a NUL or an unpaired surrogate (\\0, \\ud800...)",
                *self.mark(node), format_path(path), hint="remove the escape"))
            return None
        return value

    def _surprise(self, node: Node, path: FieldPath) -> None:
        """A plain number YAML 1.1 reads as something else than it shows (``0777`` is 511,
        ``1:30`` is 90): refused, so a seed or a size is never silently another number."""
        text = str(node.value)
        value = self.constructor.construct_object(node, deep=True)
        if ":" in text:
            message = f"{text} is a YAML 1.1 base-60 number (read as {value})"
            hint = f'write the number in decimal, or quote it ("{text}") if it is text'
        else:
            sign = text[0] if text[0] in "+-" else ""
            plain = sign.replace("+", "") + (text[len(sign):].lstrip("0_") or "0")
            message = f"{text} has a leading zero, which YAML reads as the octal number {value}"
            hint = (f"write the number without the leading zero ({plain}), or quote it "
                    f'("{text}") if it is text')
        self.problems.append(Problem(self.file, message, *self.mark(node), format_path(path),
                                     hint=hint))

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[Any, Any] | None:
        if node.tag != "tag:yaml.org,2002:map":
            self._bad_tag(node, path)
            return None
        out: dict[Any, Any] = {}
        for key_node, value_node in self._pairs(node, path):
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.file, "keys must be plain names",
                                             *self.mark(key_node), format_path(path)))
                continue
            # Keys are names: `1:`, `~:` or `2024-01-01:` stay the text that was written.
            key = self._scalar(key_node, path, is_key=True)
            key = key if isinstance(key, str) else str(key_node.value)
            keyed: FieldPath = (*path, key)
            if key in out:
                first = self.key_positions[keyed]
                self.problems.append(Problem(
                    self.file, f"duplicate key {key!r} (first at line {first[0]})",
                    *self.mark(key_node), format_path(keyed),
                    hint="remove one of them: YAML would silently keep the last"))
                continue
            self.key_positions[keyed] = self.mark(key_node)
            out[key] = self.build(value_node, keyed)
        return out

    def _pairs(self, node: MappingNode, path: FieldPath) -> Iterator[tuple[Node, Node]]:
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(Problem(self.file, "merge keys (<<) are not supported",
                                             *self.mark(key_node), format_path(path),
                                             hint="write the keys out"))
                continue
            yield key_node, value_node


_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")
# YAML 1.1 numbers that do not mean what they show: octal by a leading zero, base 60 by colons.
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_NUMBER_TAGS = (_YAML + "int", _YAML + "float")


def _surprising_number(node: Node) -> bool:
    if not isinstance(node, ScalarNode) or node.style is not None or node.tag not in _NUMBER_TAGS:
        return False
    text = str(node.value)
    return ":" in text or (node.tag == _YAML + "int" and _OCTAL.fullmatch(text) is not None)


def _codepoint(character: int | str) -> str:
    return f"U+{character if isinstance(character, int) else ord(character):04X}"


def _line_col(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def load_text(text: str, file: str, *, empty_ok: bool = False) -> Located:
    """Parse YAML text; raises PlanError with every problem found.

    An empty file (nothing but comments) is an error unless ``empty_ok``: then its data is None.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = f"YAML syntax error: {exc.problem or exc.context}"
        raise PlanError(problems=[Problem(file, message, line, col, hint=(
            "check indentation and quoting near this line; quote values containing ': ' or '#'"))]
        ) from None
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        raise PlanError(problems=[Problem(
            file, f"control character {_codepoint(exc.character)} is not allowed in YAML",
            line, col,
            hint="remove it, or write it as an escape inside double quotes")]) from None
    except yaml.YAMLError as exc:
        raise PlanError(problems=[Problem(file, f"YAML error: {exc}")]) from None
    except RecursionError:
        raise PlanError(problems=[Problem(
            file, "nested too deeply to read", hint="a plan is a few levels deep")]) from None
    if node is None:
        if empty_ok:
            return Located(file, None, {}, {})
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


def load_file(path: Path, display: str | None = None, *, empty_ok: bool = False) -> Located:
    shown = display or str(path)
    return load_text(read_text(path, shown), shown, empty_ok=empty_ok)
