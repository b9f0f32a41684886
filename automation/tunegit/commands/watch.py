"""`tunegit watch`: the watcher as a daemon (timer + filesystem events, clean SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from tunegit.commands.common import out
from tunegit.commands.reconcile import config
from tunegit.loop.daemon import watch


def main(args: argparse.Namespace) -> int:
    stop, wake = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        out(f"{signal.Signals(signum).name}: finishing the current cycle")
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cfg = config(args)
    out(f"watching {cfg.remote}/{cfg.branch} in {cfg.root} every {args.interval:g} s; "
        f"{cfg.serving()}")
    watch(cfg, interval_s=args.interval, min_gap_s=args.min_gap, stop=stop, wake=wake, log=out)
    out("stopped")
    return 0
