"""Tool backends, registered by the names a plan's ``tools:`` uses.

A backend is a module; the registries import it on first use, so that
``python3 -m tunegit.tools.<backend>`` (the job scripts' run-time helpers)
does not find its module already imported by this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunegit.errors import TunegitError
from tunegit.registry import Registry
from tunegit.tools.base import EvaluationTool, PreparationTool, RenderContext

if TYPE_CHECKING:  # mypy checks that each backend module satisfies its Protocol
    from tunegit.tools import inspect_ai, torchtune

    _PREPARATION_CHECK: PreparationTool = torchtune
    _EVALUATION_CHECK: EvaluationTool = inspect_ai

__all__ = ["EVALUATION", "PREPARATION", "RenderContext", "get_evaluation", "get_preparation"]


PREPARATION: Registry[PreparationTool] = Registry({"torchtune": "tunegit.tools.torchtune"})
EVALUATION: Registry[EvaluationTool] = Registry({"inspect-ai": "tunegit.tools.inspect_ai"})


def get_preparation(name: str) -> PreparationTool:
    if name not in PREPARATION:
        raise TunegitError(f"unknown preparation tool {name!r}",
                           hint="supported: " + ", ".join(sorted(PREPARATION)))
    return PREPARATION[name]


def get_evaluation(name: str) -> EvaluationTool:
    if name not in EVALUATION:
        raise TunegitError(f"unknown evaluation tool {name!r}",
                           hint="supported: " + ", ".join(sorted(EVALUATION)))
    return EVALUATION[name]
