"""`tunegit tiny-model`: the demo's tiny Llama, made locally (no model hub needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunegit.commands.common import out, workspace
from tunegit.generators.tinymodel import make_tiny_model

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
    out(f"creating the tiny Llama in {dest} ...")
    make_tiny_model(dest)
    out(f"created {dest}")
    return 0
