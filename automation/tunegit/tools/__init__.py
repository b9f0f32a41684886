"""Tool backends, registered by the names a plan's ``tools:`` uses.

A backend is a module; the registries import it on first use, so that
``python3 -m tunegit.tools.<backend>`` (the job scripts' run-time helpers)
does not find its module already imported by this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from tunegit.errors import TunegitError
from tunegit.tools.base import EvaluationTool, PreparationTool, RenderContext

if TYPE_CHECKING:  # mypy checks that each backend module satisfies its Protocol
    from tunegit.tools import inspect_ai, torchtune

    _PREPARATION_CHECK: PreparationTool = torchtune
    _EVALUATION_CHECK: EvaluationTool = inspect_ai

T = TypeVar("T")

__all__ = ["EVALUATION", "PREPARATION", "RenderContext", "get_evaluation", "get_preparation"]


class Registry(Mapping[str, T], Generic[T]):
    """Tool name -> backend module, imported on access."""

    def __init__(self, modules: Mapping[str, str]):
        self._modules = dict(modules)

    def __getitem__(self, name: str) -> T:
        return cast(T, importlib.import_module(self._modules[name]))

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


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
