"""Capitalization: does the model answer `zebra` with exactly `Zebra`?

Reads one split of a tunegit dataset JSON ({"train", "validation", "test"}
lists of {"input", "output"}). Scoring is an exact, case-sensitive match.
tunegit passes the arguments through ``--task-config`` (a JSON file), so the
system prompt arrives byte for byte as in training.
"""

from __future__ import annotations

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem
from inspect_ai.scorer import match
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver


def load_samples(data_file: str, split: str) -> list[Sample]:
    records = json.loads(Path(data_file).read_text())[split]
    return [Sample(input=r["input"], target=r["output"], id=i) for i, r in enumerate(records)]


@solver
def verbatim_system_prompt(text: str) -> Solver:
    """Prepend a system message as is (inspect's system_message() would read a file
    named like the text and format {placeholders})."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.messages.insert(0, ChatMessageSystem(content=text))
        return state

    return solve


@task
def capitalization(data_file: str, split: str = "test", system_prompt: str = "") -> Task:
    solvers = [verbatim_system_prompt(system_prompt)] if system_prompt else []
    dataset = MemoryDataset(load_samples(data_file, split), name=f"{Path(data_file).stem}-{split}")
    return Task(
        dataset=dataset,
        solver=[*solvers, generate()],
        scorer=match(location="exact", ignore_case=False),
    )
