"""The filesystem and the clock, once: the atomic writer, the status reader, the log-tail
reader and UTC now. Everything outside the pure core that writes a file or reads the time
calls these, so each rule below is stated and kept in one place.

- A file is written only when its bytes change (an unchanged pass makes no diff), through a
  temporary file in the same directory and os.replace, so a crash leaves the old file or the
  new one, never half of one.
- A log is read from its end, at most ``limit`` bytes (or its last lines), undecodable bytes
  replaced; a log that cannot be read reads as "".
- Times are UTC, to the second, ISO-8601 with a ``Z``: the format of runs_status.yaml.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import tempfile
from pathlib import Path

from tunegit.core.stamps import TIME_FORMAT
from tunegit.core.status import StatusFile, parse

TAIL_BYTES = 64 * 1024  # enough for a job's last traceback


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_if_changed(path: Path, content: str | bytes) -> bool:
    """Atomic replace (temp file + os.replace), only when the bytes change; True if written.
    Text is written as UTF-8."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file 0600: give it the mode it had, or a new file's (umask applied),
    # so a lab's shared checkout stays readable by the group.
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def read_status(path: Path) -> StatusFile | None:
    """A runs_status.yaml, parsed; None when there is none (StatusFormatError when malformed)."""
    if not path.is_file():
        return None
    return parse(path.read_text(encoding="utf-8"))


def read_rendered(path: Path) -> str | None:
    """A generated file's text as it is on disk, None when there is none (undecodable bytes
    replaced: such a file then differs from any rendering)."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file as text; "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail_lines(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a file, as `tail -n` prints them; "" when it cannot be read."""
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    if lines < 1:
        return ""
    limit = TAIL_BYTES
    while True:
        text = tail(path, limit)
        # Read from mid-file, the first line may be cut: enough lines after it, or all of it.
        if text.count("\n") > lines or limit >= size:
            break
        limit *= 4
    ending = "\n" if text.endswith("\n") else ""
    return "\n".join(text.removesuffix("\n").split("\n")[-lines:]) + ending


def utc_now() -> str:
    """Now, in UTC, to the second: ``2026-11-24T15:38:20Z``."""
    return dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)
