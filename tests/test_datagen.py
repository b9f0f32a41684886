"""Capitalization datasets: the words_<L>L_80P_<N>.json format, deterministic, and the committed
demo file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunegit.generators.datagen import make_dataset, pronounceable_words, write_dataset

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tasks" / "capitalization" / "input" / "words_5L_80P_200.json"


def test_splits_and_records() -> None:
    data = make_dataset(8, 100, seed=3)
    assert {k: len(v) for k, v in data.items()} == {"train": 80, "validation": 10, "test": 10}
    words = [r["input"] for split in data.values() for r in split]
    assert len(set(words)) == 100 and all(len(w) == 8 and w.isalpha() for w in words)
    assert all(r["output"] == r["input"][0].upper() + r["input"][1:] for r in data["test"])


def test_deterministic_from_seed() -> None:
    assert make_dataset(5, 50, seed=1) == make_dataset(5, 50, seed=1)
    assert make_dataset(5, 50, seed=1) != make_dataset(5, 50, seed=2)


def test_too_many_words_is_refused() -> None:
    with pytest.raises(ValueError):
        pronounceable_words(random.Random(0), 10_000, 2)


def test_committed_demo_dataset_is_reproducible(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, 5, 200, seed=0)
    assert path.name == DEMO.name
    assert path.read_text() == DEMO.read_text()
    assert len(json.loads(DEMO.read_text())["train"]) == 160
