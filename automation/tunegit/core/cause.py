"""Why a job failed, in one line, from the tail of its own log (pure).

What a user wants first from a failed step is the line a person would look for in its log:

1. the exception line of the last Python traceback (``KeyError: 'answer'``): the first line
   after the last ``Traceback (most recent call last):`` header that is not a frame (frames
   are indented; inspect's rich tracebacks draw them in a box). Where the tail starts inside
   that traceback, so that its header is cut off, the last line shaped like an exception line
   (``[module.]NameError: message``) stands in for it;
2. else the last error line a tool or the shell printed (``tune run: error: ...``,
   ``slurmstepd: error: ...``, ``...: command not found``);
3. else the last non-empty line.

torchrun's ``[rank0]:`` prefixes are dropped first. The cause is one line, its control
characters escaped, cut only past ``CAUSE_MAX`` characters (an exception line is kept whole).
"""

from __future__ import annotations

import re

from tunegit.errors import one_line

CAUSE_MAX = 1000
_RANK = re.compile(r"^\[(?:default)?(?:rank)?\d+\]:\s?")
_HEADER = "Traceback (most recent call last)"
_FRAME_CHARS = " \t│╭╰|+"  # the first character of a frame line: indented, or a box or group
_EXCEPTION = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)(?::\s.*)?$")
_GROUP_BARS = re.compile(r"^\s*(?:[|+]\s*)*")
_NAME_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?::\s.*)?$")
_ERROR_LINE = re.compile(r"(?:^|:\s)(?:error|ERROR|Error)\b|command not found|\bKilled\b")


def failure_cause(log_text: str) -> str:
    """The line of ``log_text`` that says why its job failed ("" for an empty log)."""
    lines = [_RANK.sub("", line).rstrip() for line in log_text.splitlines()]
    cause = _exception_line(lines) or _error_line(lines) or _last_line(lines)
    return _capped(one_line(cause.strip()))


def _exception_line(lines: list[str]) -> str:
    header = max((i for i, line in enumerate(lines) if _HEADER in line), default=None)
    if header is not None:
        after = next((x for x in lines[header + 1:] if x and x[0] not in _FRAME_CHARS), "")
        if _NAME_LINE.match(after):
            return after
    # No header in the tail, or an exception group's (whose lines are all inside its bars).
    bare = (_GROUP_BARS.sub("", line) for line in reversed(lines))
    return next((line for line in bare if _EXCEPTION.match(line)), "")


def _error_line(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if _ERROR_LINE.search(line)), "")


def _last_line(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line.strip()), "")


def _capped(text: str) -> str:
    return text if len(text) <= CAUSE_MAX else text[:CAUSE_MAX - 1] + "…"
