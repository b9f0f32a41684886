"""`tunegit dataset capitalization --letters N --words M`: a dataset for the example task."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunegit.commands.common import out, workspace
from tunegit.errors import TunegitError
from tunegit.generators.datagen import file_name, write_dataset

# Where the example task's plans look for their data, relative to the repository.
INPUT_DIR = Path("tasks") / "capitalization" / "input"
MIN_WORDS = 10  # fewer leaves the 10% splits empty


def main(args: argparse.Namespace) -> int:
    if args.letters < 1:
        raise TunegitError(f"--letters {args.letters}: must be >= 1",
                           hint="the length of every word, e.g. --letters 5")
    if args.words < MIN_WORDS:
        raise TunegitError(f"--words {args.words}: must be >= {MIN_WORDS}",
                           hint="fewer leaves the validation and test splits empty, e.g. "
                           "--words 200")
    if args.out_dir:  # relative to -C, like every path on tunegit's command line
        out_dir = Path(args.root or ".") / args.out_dir
    else:
        out_dir = workspace(args).root / INPUT_DIR
    try:
        path = write_dataset(out_dir, args.letters, args.words, args.seed)
    except ValueError as exc:
        raise TunegitError(f"cannot make {file_name(args.letters, args.words)}: {exc}",
                           hint="ask for fewer words, or longer ones (--letters)") from exc
    out(f"wrote {path}")
    return 0
