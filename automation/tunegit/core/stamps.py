"""Timestamps as runs_status.yaml records them: UTC, to the second, `2026-11-24T15:38:20Z`."""

from __future__ import annotations

import datetime as dt

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_stamp(text: str | None) -> dt.datetime | None:
    """The moment a stamp names (aware, UTC); None for anything else."""
    try:
        return dt.datetime.strptime(text or "", TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def seconds_between(start: str | None, end: str | None) -> float | None:
    """``end`` - ``start`` in seconds; None unless both are stamps."""
    a, b = parse_stamp(start), parse_stamp(end)
    return None if a is None or b is None else (b - a).total_seconds()
