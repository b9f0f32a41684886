"""Shared helpers for the plan tests: a minimal experiments repository in a temp dir.

Each helper copies only what a plan needs (sites/, tasks/) from this checkout into
``tmp_path``; no test ever writes into the checkout itself.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tunegit.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_8L = "cap_8L_lora_comparison_2025-10-22"
EXAMPLE_SWEEP = "cap_4L_lora_lr_sweep_2025-10-22"
DEMO = "demo_capitalization"

SITE_FILES = ("della.yaml", "local.yaml", "della.priors.yaml")
TASK_FILES = (
    "capitalization/eval.py",
    "capitalization/input/words_8L_80P_10000.json",
    "capitalization/input/words_4L_80P_1000.json",
    "capitalization/input/words_5L_80P_200.json",
    "reasoning/eval.py",
    "reasoning/test.json",
)

# A small valid plan on the della site (models_dir not visible here): 2 runs + 1 control.
MINIMAL_PLAN = """\
name: {name}
question: Does rank matter?
site: della
models: [meta-llama/Llama-3.2-1B-Instruct]
dataset: {{path: tasks/capitalization/input/words_4L_80P_1000.json}}
factors:
  lora_rank: [4, 64]
controls: true
run_name: "{{model}}_rank{{lora_rank}}"
training:
  epochs: 2
  batch_size: 4
  packed: false
evaluation:
  epochs: last
  tasks:
    - name: capitalization
      script: tasks/capitalization/eval.py
      dataset: training
"""


def make_repo(root: Path, *, experiments: tuple[str, ...] = ()) -> Path:
    """A minimal experiments repository: sites/, tasks/ and the named example experiments."""
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    for name in SITE_FILES:
        (root / "sites").mkdir(exist_ok=True)
        shutil.copy2(REPO / "sites" / name, root / "sites" / name)
    for rel in TASK_FILES:
        dest = root / "tasks" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "tasks" / rel, dest)
    for exp in experiments:
        dest = root / "experiments" / exp
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "experiments" / exp / "experiment.yaml", dest / "experiment.yaml")
    return root


def write_plan(root: Path, name: str, text: str | bytes) -> Path:
    """experiments/NAME/experiment.yaml with ``text`` (dedented when str)."""
    path = root / "experiments" / name / "experiment.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal_plan(name: str = "exp", *edits: tuple[str, str]) -> str:
    """MINIMAL_PLAN for ``name``, with each (old, new) text replacement applied."""
    text = MINIMAL_PLAN.format(name=name)
    for old, new in edits:
        text = with_text(text, old, new)
    return text


def with_text(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in plan"
    return text.replace(old, new)


def run_cli(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    """main(["-C", root, *args]) in-process -> (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["-C", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
