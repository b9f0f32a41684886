"""Capitalization datasets in the format below, from a built-in word generator.

``words_<L>L_80P_<N>.json`` holds ``{"train": [...], "validation": [...],
"test": [...]}`` of ``{"input": word, "output": Word}``: 80% train, 10%
validation, 10% test, deterministic from a seed. Words are pronounceable
letter strings (alternating consonant and vowel groups): no word list to
download.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"
TRAIN_PERCENT = 80


def pronounceable_word(rng: random.Random, length: int) -> str:
    start_with_vowel = rng.random() < 0.3
    letters = []
    for i in range(length):
        vowel = (i % 2 == 0) == start_with_vowel
        letters.append(rng.choice(VOWELS if vowel else CONSONANTS))
    return "".join(letters)


def pronounceable_words(rng: random.Random, count: int, min_len: int,
                        max_len: int | None = None) -> list[str]:
    """``count`` distinct words, lengths in [min_len, max_len] (max_len defaults to min_len)."""
    top = max_len or min_len
    capacity = sum(len(CONSONANTS) ** ((n + 1) // 2) * len(VOWELS) ** (n // 2)
                   for n in range(min_len, top + 1))
    if count > capacity // 2:
        raise ValueError(f"cannot draw {count} distinct words of length {min_len}-{top}")
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(pronounceable_word(rng, rng.randint(min_len, top)), None)
    return list(seen)


def make_dataset(word_len: int, num_words: int, seed: int = 0) -> dict[str, list[dict[str, str]]]:
    """Split ``num_words`` words of ``word_len`` letters 80/10/10."""
    words = pronounceable_words(random.Random(seed), num_words, word_len)
    records = [{"input": w, "output": w.capitalize()} for w in words]
    n_train = num_words * TRAIN_PERCENT // 100
    n_val = (num_words - n_train) // 2
    return {"train": records[:n_train], "validation": records[n_train:n_train + n_val],
            "test": records[n_train + n_val:]}


def file_name(word_len: int, num_words: int) -> str:
    return f"words_{word_len}L_{TRAIN_PERCENT}P_{num_words}.json"


def dataset_text(word_len: int, num_words: int, seed: int = 0) -> str:
    """The file's text: the dataset as indented JSON."""
    return json.dumps(make_dataset(word_len, num_words, seed), indent=1) + "\n"


def write_dataset(directory: Path, word_len: int, num_words: int, seed: int = 0) -> Path:
    """Write the dataset as ``directory/words_<L>L_80P_<N>.json``; return its path."""
    path = directory / file_name(word_len, num_words)
    text = dataset_text(word_len, num_words, seed)  # before mkdir: it may refuse the numbers
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
