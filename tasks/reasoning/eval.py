"""Two-step arithmetic word problems (inspect-ai task): a second evaluation task next to
capitalization, for plans that evaluate a run on more than one task."""

from __future__ import annotations

import json

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate, system_message


@task
def reasoning(data_file: str = "tasks/reasoning/test.json", split: str = "test",
              system_prompt: str = "") -> Task:
    with open(data_file, encoding="utf-8") as f:
        rows = json.load(f)[split]
    samples = [Sample(input=r["input"], target=r["output"]) for r in rows]
    solver = [system_message(system_prompt), generate()] if system_prompt else [generate()]
    return Task(dataset=samples, solver=solver, scorer=match(location="end", numeric=True))
