"""`tunegit init [DIR]`: a lab's own experiments repository, ready for its first commit."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunegit.commands.common import out, report_writes
from tunegit.edges.labrepo import BRANCH, write_init
from tunegit.edges.scaffold import CONFLICT, plan_writes
from tunegit.errors import TunegitError
from tunegit.generators.datagen import dataset_text, file_name
from tunegit.render.labrepo import lab_files
from tunegit.version import tag

# The example task's dataset: the one `tunegit new`'s skeleton plan trains on.
EXAMPLE_LETTERS, EXAMPLE_WORDS = 5, 200
EXAMPLE_DATASET = f"tasks/capitalization/input/{file_name(EXAMPLE_LETTERS, EXAMPLE_WORDS)}"


def init_files(tunegit_url: str) -> dict[str, str]:
    """{path: text} of every file `tunegit init` writes: the rendered ones and the dataset."""
    return {**lab_files(tunegit_url),
            EXAMPLE_DATASET: dataset_text(EXAMPLE_LETTERS, EXAMPLE_WORDS)}


def main(args: argparse.Namespace) -> int:
    root = (Path(args.root or ".") / args.dir).resolve()  # a relative DIR is under -C
    if root.exists() and not root.is_dir():
        raise TunegitError(f"{args.dir} is a file", hint="give a directory for the repository")
    files = init_files(args.tunegit_url)
    actions = plan_writes(root, files, force=args.force)
    summary = report_writes(actions, show_identical=True)
    if args.dry_run:
        out(f"dry run: {summary}; nothing written under {root}")
    else:
        initialised = write_init(root, files, actions)
        out(f"{summary} under {root} (tunegit {tag()})"
            + (f"; a new git repository on branch {BRANCH}" if initialised else ""))
    conflicts = sum(1 for x in actions if x.action == CONFLICT)
    if conflicts:
        out(f"{conflicts} file(s) changed by hand were left alone: review them against "
            "`tunegit init --dry-run`, or rerun with --force to overwrite")
        return 1
    if not args.dry_run:
        out(NEXT_STEPS.format(dir=args.dir, dataset=EXAMPLE_DATASET))
    return 0


NEXT_STEPS = """\
next, in {dir}:
  pre-commit install                      (the hooks then check every commit)
  git add -A && git commit -m "tunegit init"
  tunegit new NAME                        (a plan training on {dataset})
README.md says the rest; sites/cluster.yaml is a SLURM site to fill in."""
