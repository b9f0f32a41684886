"""Shared helpers for tests: an experiments repository in a temp dir, and plans for it.

``make_repo`` copies only what a plan needs (sites/, tasks/) from this checkout into
``tmp_path`` (and can make it a git repository); no test ever writes into the checkout
itself. ``tiny_plan`` is the one plan builder: the standard tiny plan as YAML text, with
keyword overrides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    "capitalization/input/words_5L_80P_1000.json",
    "reasoning/eval.py",
    "reasoning/test.json",
)
# What make_repo copies by default: both sites, della's priors, every task file the plans use.
PLAN_FILES = (*(f"sites/{name}" for name in SITE_FILES),
              *(f"tasks/{rel}" for rel in TASK_FILES))
# What a plan on the local site needs: the site, the capitalization task and its small
# datasets (the tiny plans' and the demo's).
LOCAL_FILES = ("sites/local.yaml", "tasks/capitalization/eval.py",
               "tasks/capitalization/input/words_5L_80P_200.json",
               "tasks/capitalization/input/words_5L_80P_1000.json")
GITIGNORE = ".tunegit/\n__pycache__/\n"

# The standard tiny plan: one 5-step LoRA fine-tune of the tiny model on the local site.
TINY_PLAN: dict[str, Any] = {
    "name": "exp",
    "type": "sanity_check",
    "question": "Does the GitOps loop work?",
    "site": "local",
    "tools": {"preparation": "torchtune", "evaluation": "inspect-ai"},
    "models": ["tunegit/tiny-llama"],
    "dataset": {"path": "tasks/capitalization/input/words_5L_80P_200.json"},
    "factors": {"lora_rank": [8]},
    "controls": False,
    "run_name": "tiny-llama_rank{lora_rank}",
    "training": {"epochs": 1, "learning_rate": 1.0e-2, "batch_size": 4, "packed": False,
                 "max_seq_len": 256, "validation": False, "gpus": 1, "system_prompt": "",
                 "seed": 0, "max_steps_per_epoch": 5},
    "evaluation": {"epochs": "last", "tasks": [
        {"name": "capitalization", "script": "tasks/capitalization/eval.py",
         "dataset": "training", "max_tokens": 8}]},
}
# Training overrides for the tiny jobs the executor and scheduler tests submit: whole
# epochs, batches of 8 examples of at most 64 tokens.
WHOLE_EPOCH = {"batch_size": 8, "max_seq_len": 64, "max_steps_per_epoch": None}

# A small valid plan on the della site (models_dir not visible here): 2 runs + 1 control.
# The located-error tests edit its text: their line:column numbers are read off it.
MINIMAL: dict[str, Any] = {
    "type": None, "question": "Does rank matter?", "site": "della", "tools": None,
    "models": ["meta-llama/Llama-3.2-1B-Instruct"],
    "dataset": {"path": "tasks/capitalization/input/words_4L_80P_1000.json"},
    "factors": {"lora_rank": [4, 64]}, "controls": True,
    "run_name": "{model}_rank{lora_rank}",
    "training": {"epochs": 2, "learning_rate": None, "max_seq_len": None, "validation": None,
                 "gpus": None, "system_prompt": None, "seed": None,
                 "max_steps_per_epoch": None},
    "evaluation": {"tasks": [{"name": "capitalization", "script": "tasks/capitalization/eval.py",
                              "dataset": "training"}]},
}
_BLOCK_KEYS = ("factors", "training", "evaluation")  # written one key a line; the rest in flow


def tiny_plan(name: str = "exp", **overrides: Any) -> str:
    """TINY_PLAN named ``name`` as YAML text, each keyword replacing one top-level key.

    A mapping given for a mapping key is merged into it (``training={"batch_size": 8}``);
    None removes a key, at the top level or inside such a mapping.
    """
    plan = {**TINY_PLAN, "name": name}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(plan.get(key), Mapping):
            value = {k: v for k, v in {**plan[key], **value}.items() if v is not None}
        plan[key] = value
    lines = []
    for key, value in plan.items():
        if value is None:
            continue
        if key not in _BLOCK_KEYS or not isinstance(value, Mapping):
            lines.append(f"{key}: {_flow(value)}")
            continue
        lines.append(f"{key}:")
        for sub, item in value.items():
            if isinstance(item, list) and item and all(isinstance(i, Mapping) for i in item):
                lines.append(f"  {sub}:")
                lines += [f"    {'  ' if n else '- '}{k}: {_flow(v)}"
                          for entry in item for n, (k, v) in enumerate(entry.items())]
            else:
                lines.append(f"  {sub}: {_flow(item)}")
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    """``value`` as one line of flow YAML; a float as 1.0e-2, a string quoted only if it must."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
        mantissa = "".join(map(str, digits))
        power = int(exponent) + len(digits) - 1
        return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}e{power:+d}"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (text and not set(text) & set("{}[],:#&*!|>'\"%@`")
             and yaml.safe_load(f"key: {text}") == {"key": text})
    return text if plain else json.dumps(text)


def make_repo(root: Path, *, files: tuple[str, ...] = PLAN_FILES,
              experiments: tuple[str, ...] = (), plans: Mapping[str, str] | None = None,
              gitignore: str | None = None, link_automation: bool = False,
              commit: str | None = None, texts: Mapping[str, str] | None = None) -> Path:
    """An experiments repository in ``root``: ``files`` and the named example experiments
    copied from this checkout, ``plans`` ({name: text}) and ``texts`` ({path: text})
    written, a .gitignore.

    ``link_automation`` links this checkout's automation/ in (job scripts put
    <repo>/automation on PYTHONPATH); ``commit``: make it a git repository on main whose one
    commit, with this message, holds it all.
    """
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    for rel in (*files, *(f"experiments/{exp}/experiment.yaml" for exp in experiments)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    for name, text in (plans or {}).items():
        (root / "experiments" / name).mkdir(parents=True)
        (root / "experiments" / name / "experiment.yaml").write_text(text)
    for rel, text in (texts or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if link_automation:
        (root / "automation").symlink_to(REPO / "automation")
    if gitignore is not None:
        (root / ".gitignore").write_text(gitignore)
    if commit is not None:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(root), "commit", "-qm", commit], check=True)
    return root


def weightless_model(root: Path, short: str = "tiny-llama",
                     models_dir: str = ".tunegit/models") -> Path:
    """A model directory holding only a config.json: the preflight finds the model there,
    and a job that loads its weights fails within seconds (for tests of what happens around
    a job, not in it). Returns the directory."""
    target = root / models_dir / short
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text('{"model_type": "llama"}\n')
    return target


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
    """The MINIMAL plan named ``name``, with each (old, new) text replacement applied."""
    text = tiny_plan(name, **MINIMAL)
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
