"""`tunegit tiny-model`: the demo's tiny Llama, made locally (no model hub needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunegit.commands.common import out, workspace
from tunegit.errors import TunegitError
from tunegit.generators.tinymodel import PRETRAIN_STEPS, make_tiny_model

NAME = "tiny-llama"


def main(args: argparse.Namespace) -> int:
    ws = workspace(args)
    if args.dest:
        dest = Path(args.dest)
    else:
        site = ws.load_site(args.site)
        dest = ws.site_dir(site.models_dir) / NAME
    if (dest / "config.json").is_file():
        out(f"{dest} exists: kept")
        return 0
    steps = PRETRAIN_STEPS if args.pretrain_steps is None else args.pretrain_steps
    if steps < 0:
        raise TunegitError(f"--pretrain-steps {steps}: must be >= 0",
                           hint=f"omit it for the default ({PRETRAIN_STEPS})")
    out(f"creating the tiny Llama in {dest} ...")
    make_tiny_model(dest, pretrain_steps=steps, progress=out)
    out(f"created {dest}")
    return 0
