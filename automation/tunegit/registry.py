"""Plug-ins by name: a registry maps the name a plan or site uses to the module of its backend.

A backend is a module, imported on first use, so that ``python3 -m <backend module>`` (a
job script's run-time helper) does not find its module already imported by this package.
Adding a backend is one module and one line in its registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, cast

from tunegit.errors import TunegitError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> backend module, imported on access. ``what`` names a backend in messages."""

    def __init__(self, modules: Mapping[str, str], *, what: str = "backend"):
        self.modules = dict(modules)  # name -> dotted module path
        self.what = what

    def __getitem__(self, name: str) -> T:
        return cast(T, importlib.import_module(self.modules[name]))

    def __iter__(self) -> Iterator[str]:
        return iter(self.modules)

    def __len__(self) -> int:
        return len(self.modules)

    def names(self) -> str:
        return ", ".join(sorted(self.modules))

    def get_backend(self, name: str) -> T:
        """The backend registered as ``name``; an unknown name says which ones are."""
        if name not in self.modules:
            raise TunegitError(f"unknown {self.what} {name!r}",
                               hint=f"registered {self.what}s: {self.names()}")
        return self[name]
