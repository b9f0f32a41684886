"""Capitalization datasets: the words_<L>L_80P_<N>.json format, deterministic, the committed
demo file, and `tunegit dataset capitalization`, the command the hints name."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from planfixtures import make_repo, run_cli, tiny_plan
from tunegit.edges.verify import missing_dataset_hint
from tunegit.generators.datagen import (
    file_name,
    make_dataset,
    pronounceable_words,
    write_dataset,
)

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


def test_the_dataset_command_makes_the_committed_demo_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "experiments").mkdir()
    code, out, _ = run_cli(capsys, tmp_path, "dataset", "capitalization", "--letters", "5",
                           "--words", "200")
    made = tmp_path / "tasks" / "capitalization" / "input" / DEMO.name
    assert code == 0 and out == f"wrote {made}\n"
    assert made.read_text() == DEMO.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--letters", "0", "--words", "200"], "error: --letters 0: must be >= 1\n"),
    (["--letters", "5", "--words", "3"], "error: --words 3: must be >= 10\n"),
    (["--letters", "1", "--words", "1000"],
     "error: cannot make words_1L_80P_1000.json: cannot draw 1000 distinct words of length "
     "1-1\nhint: ask for fewer words, or longer ones (--letters)\n"),
], ids=["no letters", "too few words", "more words than there are"])
def test_the_dataset_command_refuses_what_it_cannot_make(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    (tmp_path / "experiments").mkdir()
    code, _, err = run_cli(capsys, tmp_path, "dataset", "capitalization", *args)
    assert code == 1 and err.startswith(message)
    assert not (tmp_path / "tasks").exists()


def test_a_missing_generated_dataset_names_the_command_that_makes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = f"tasks/capitalization/input/{file_name(6, 300)}"
    make_repo(tmp_path, files=("sites/local.yaml", "tasks/capitalization/eval.py"),
              plans={"exp": tiny_plan("exp", dataset={"path": data})})
    code, _, err = run_cli(capsys, tmp_path, "check", "experiments/exp")
    command = "tunegit dataset capitalization --letters 6 --words 300"
    assert code == 1
    assert (f"experiments/exp/experiment.yaml:7:17: dataset.path: dataset {data} not found\n"
            f"  hint: make it with `{command}`, or fix the path\n") in err
    assert run_cli(capsys, tmp_path, *command.split()[1:])[0] == 0  # the hint, followed
    code, _, err = run_cli(capsys, tmp_path, "check", "--write", "experiments/exp")
    assert code == 0, err


def test_the_hint_for_other_places_and_other_names() -> None:
    assert missing_dataset_hint("data/my words/words_4L_80P_50.json") == (
        "make it with `tunegit dataset capitalization --letters 4 --words 50 --out-dir "
        "'data/my words'`, or fix the path")
    assert missing_dataset_hint("data/qa.json") == (
        "fix the path, or add the file (a {train, validation, test} JSON)")


def test_out_dir_is_relative_to_dash_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "experiments").mkdir()
    code, _, err = run_cli(capsys, tmp_path, "dataset", "capitalization", "--letters", "4",
                           "--words", "50", "--out-dir", "data")
    assert code == 0, err
    assert (tmp_path / "data" / file_name(4, 50)).is_file()
