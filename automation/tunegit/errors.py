"""One error type for everything a user can fix, and the handler around main.

Every user-facing error carries where it happened (file, line, column), which
field it concerns, what is wrong, and the way out (a hint). Plan errors print
compiler-style: ``experiments/x/experiment.yaml:12:5: training.batch_size: must be > 0``.

Every error a user can act on is a TunegitError, defined where it is raised (PlanError
here; SubmitError and SchedulerError in executors.base, RetryError in core.reconcile,
StatusFormatError in core.status, GitStoreError in edges.gitstore), so the one handler
around main (``run_guarded``) prints each with its way out: no command translates them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable

# Line breaks and other control characters a plan value may carry, shown escaped: one
# problem is one line, so a value cannot forge further lines (or CI workflow commands).
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)
            if c != 0x09}


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we know."""

    file: str
    message: str
    line: int | None = None
    col: int | None = None
    field: str = ""
    hint: str = ""

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        message, field = one_line(self.message), one_line(self.field)
        head = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class TunegitError(Exception):
    """An error the user can act on. ``problems`` holds one or more located problems."""

    def __init__(self, message: str = "", *, problems: Iterable[Problem] = (), hint: str = ""):
        self.problems = tuple(problems)
        self.hint = hint
        super().__init__(message or "\n".join(p.format() for p in self.problems))

    def format(self) -> str:
        parts = [str(self)] if not self.problems or self.args[0] != self._joined() else []
        parts += [p.format() for p in self.problems]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(part for part in parts if part)

    def _joined(self) -> str:
        return "\n".join(p.format() for p in self.problems)


class PlanError(TunegitError):
    """The plan (or site) file is invalid: nothing happens until it changes."""


def run_guarded(func: Callable[[], int]) -> int:
    """Run ``func``; known errors exit 1, Ctrl-C 130, bugs 3 with a log file path."""
    try:
        return func()
    except TunegitError as exc:
        print(f"error: {exc.format()}" if not exc.problems else exc.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception:  # the last line of defence: no traceback reaches a user
        fd, path = tempfile.mkstemp(prefix="tunegit-crash-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            traceback.print_exc(file=f)
        print(
            f"tunegit hit an internal error (a bug). The traceback is in {path}\n"
            "hint: please report it with that file attached",
            file=sys.stderr,
        )
        return 3
