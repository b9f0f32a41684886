"""Write tasks/capitalization/input/words_<L>L_80P_<N>.json: train/validation/test splits
(80/10/10 %) of {"input": word, "output": Word}.

    python tasks/capitalization/generate.py --word-len 5 --num-words 200 [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunegit.generators.datagen import write_dataset

INPUT_DIR = Path(__file__).resolve().parent / "input"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word-len", type=int, required=True)
    parser.add_argument("--num-words", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=INPUT_DIR)
    args = parser.parse_args(argv)
    print(write_dataset(args.out_dir, args.word_len, args.num_words, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
