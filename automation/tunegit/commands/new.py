"""`tunegit new NAME`: a commented skeleton plan."""

from __future__ import annotations

import argparse
import re

from tunegit.commands.common import out, workspace
from tunegit.edges.workspace import PLAN_FILE
from tunegit.errors import TunegitError
from tunegit.spec.plan import NAME_PATTERN

SKELETON = """\
# tunegit experiment plan. Field reference: `tunegit schema`.
# After editing: `tunegit check --write experiments/{name}` renders runs_plan.md.
name: {name}                  # task_factor_date; must equal the directory name
type: experiment               # experiment | sanity_check
question: What do you want to learn from these runs?
site: {site}                   # sites/{site}.yaml: paths, GPUs, scheduler
tools: {{preparation: torchtune, evaluation: inspect-ai}}

models:                        # HF ids; directories under the site's models_dir
  - meta-llama/Llama-3.2-1B-Instruct
# {{train, validation, test}} splits; `tunegit dataset capitalization --letters 5 --words 200`
# makes this one
dataset:
  path: tasks/capitalization/input/words_5L_80P_200.json

factors:                       # cartesian product; `model`, `dataset` or any training key
  lora_rank: [4, 64]
controls: true                 # one <model>_base run per model: evaluated, not trained
run_name: "{{model}}_rank{{lora_rank}}"

training:
  epochs: 2
  learning_rate: 3.0e-4
  batch_size: 4                # or per model: {{Llama-3.2-1B-Instruct: 16, default: 8}}
  packed: false
  max_seq_len: 512
  validation: false            # true needs a validation split
  gpus: 1
  system_prompt: ""            # used for training AND evaluation
  seed: 42

evaluation:
  epochs: last                 # last | first | all | best | [0, 1]
  tasks:
    - name: capitalization
      script: tasks/capitalization/eval.py
      dataset: training        # the test split of the training dataset
  # matrix: {{Llama-3.2-1B-Instruct_base: [capitalization]}}   # optional; default all x all
"""


def main(args: argparse.Namespace) -> int:
    if not re.match(NAME_PATTERN, args.name):
        raise TunegitError(
            f"invalid experiment name {args.name!r}",
            hint="use letters, digits, '.', '_' and '-', e.g. cap_8L_lora_2025-10-22",
        )
    ws = workspace(args)
    path = ws.experiment_dir(args.name) / PLAN_FILE
    if path.exists():
        raise TunegitError(f"{ws.rel(path)} already exists", hint="edit it, or choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SKELETON.format(name=args.name, site=args.site), encoding="utf-8")
    out(f"wrote {ws.rel(path)}\nnext: edit it, then `tunegit check --write {ws.rel(path.parent)}`")
    return 0
