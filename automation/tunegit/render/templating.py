"""The one jinja2 environment every rendered file goes through.

Sandboxed, StrictUndefined (a missing value is an error, never an empty
string), trailing newlines kept, the loader confined to the repository's
``templates/`` directory; ``*.html.j2`` templates autoescape every value (the report
shows plan text, which must never become markup). Filters:

- ``shq``: shell-quote one value (shlex.quote); used on every plan value that
  reaches a shell line;
- ``yamlq``: a string as a YAML-safe scalar (a JSON string, ASCII only);
- ``yamlv``: any scalar as YAML (numbers, booleans, null, quoted strings);
- ``omegaq`` / ``omegav``: the same for torchtune configs, with OmegaConf
  ``${...}`` interpolation escaped so the value arrives verbatim.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

from jinja2 import FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from jinja2.bccache import Bucket
from jinja2.sandbox import SandboxedEnvironment

# `templates/` at the repository root, shipped inside the package through a symlink.
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
# Compiled templates, beside the package's own .pyc files (keyed by the template's checksum).
BYTECODE_DIR = Path(__file__).resolve().parents[1] / "__pycache__" / "templates"
_INTERPOLATION = re.compile(r"(\\*)\$\{")


def shq(value: object) -> str:
    """Quote one value for a POSIX shell line."""
    return shlex.quote(str(value))


def omegaconf_escape(text: str) -> str:
    """Escape OmegaConf interpolations: ``${x}`` stays literal after resolution.

    OmegaConf reads ``\\${`` as a literal ``${`` and ``\\\\`` before ``${`` as one
    backslash, so backslashes right before ``${`` are doubled, then one added.
    """
    return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)


def yamlq(value: object) -> str:
    """A string as a double-quoted YAML scalar (JSON, ASCII only)."""
    return json.dumps(str(value), ensure_ascii=True)


def omegaq(value: object) -> str:
    """A string as a double-quoted YAML scalar that torchtune resolves to itself.

    torchtune's ``config.instantiate`` resolves a component's node twice
    (``OmegaConf.resolve`` in place, then ``OmegaConf.to_object``), so the text
    is escaped twice. Top-level values read once must not contain ``${``
    (tunegit refuses such paths before rendering).
    """
    return yamlq(omegaconf_escape(omegaconf_escape(str(value))))


def omegav(value: Any) -> str:
    """``yamlv`` for files torchtune reads through OmegaConf."""
    return omegaq(value) if isinstance(value, str) else yamlv(value)


def yamlv(value: Any) -> str:
    """A scalar as YAML: null, true/false, numbers (floats keep a dot or exponent), strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        mantissa, _, exponent = repr(value).partition("e")
        if "." not in mantissa:
            mantissa += ".0"  # YAML 1.1 (PyYAML) reads `1e-05` as a string
        return f"{mantissa}e{exponent}" if exponent else mantissa
    return yamlq(value)


def autoescapes(name: str | None) -> bool:
    """HTML templates escape every value they print; the others print values as they are."""
    return name is not None and name.endswith(".html.j2")


class _BytecodeCache(FileSystemBytecodeCache):
    """Compiling runs_plan.md's template took ~30 ms of every `tunegit check`; a read-only
    install only goes without the cache, as Python does without its .pyc files."""

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        # Escaping is compiled in, and jinja keys its cache on the source only.
        key = super().get_cache_key(name, filename)
        return f"{key}-escaped" if autoescapes(name) else key

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> _BytecodeCache | None:
    with contextlib.suppress(OSError):
        BYTECODE_DIR.mkdir(parents=True, exist_ok=True)
        return _BytecodeCache(str(BYTECODE_DIR))
    return None


@functools.lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        bytecode_cache=_bytecode_cache(),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescapes,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shq"] = shq
    env.filters["yamlq"] = yamlq
    env.filters["yamlv"] = yamlv
    env.filters["omegaq"] = omegaq
    env.filters["omegav"] = omegav
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with ``context``."""
    return environment().get_template(name).render(**context)
