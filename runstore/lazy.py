"""Modules imported on first use, for the store's read side.

pandas costs ≈ 37 MB of RSS per process. The store's readers (reports, monitor, the end-of-run summary) hand
out DataFrames, but a load generator mostly writes: importing pandas with the store made every Locust
process carry it from its first user on. ``pd = LazyModule("pandas")`` imports it at the first attribute
read instead; after that each read is one ``sys.modules`` lookup.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands in for the module ``name`` and imports it when an attribute is first read."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<LazyModule {self._name!r}>"
