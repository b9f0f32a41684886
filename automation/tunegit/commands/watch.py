"""`tunegit watch`: the watcher as a daemon (timer + filesystem events, clean SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from tunegit.commands.common import out
from tunegit.commands.reconcile import add_watch_args, config
from tunegit.watcher import watch


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "watch", help="the watcher daemon: reconcile on a timer and when files change",
        description="Run `tunegit reconcile --once` every --interval seconds, and at once when "
        "the checkout or a site's output directory changes. SIGTERM or Ctrl-C finish the "
        "current cycle and exit 0.")
    add_watch_args(p)
    p.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between cycles when nothing changes (default: 60)")
    p.add_argument("--min-gap", type=float, default=5.0, metavar="SECONDS",
                   help="at least this long between two cycles (default: 5)")


def main(args: argparse.Namespace) -> int:
    stop, wake = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        out(f"{signal.Signals(signum).name}: finishing the current cycle")
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cfg = config(args)
    out(f"watching {cfg.remote}/{cfg.branch} in {cfg.root} every {args.interval:g} s")
    watch(cfg, interval_s=args.interval, min_gap_s=args.min_gap, stop=stop, wake=wake, log=out)
    out("stopped")
    return 0
