"""The run store's errors: each says in one line why the store cannot be used."""

from __future__ import annotations

__all__ = ["RunNotFound", "SchemaTooNew", "StoreCorrupt", "StoreError", "StoreNotFound", "first_line"]


class StoreError(Exception):
    """The run store cannot be used; ``str()`` says why in one line."""


class StoreNotFound(StoreError):
    """No store at that path."""


class StoreCorrupt(StoreError):
    """The file is not a readable wsgauge run store."""


class SchemaTooNew(StoreError):
    """The store was written by a newer wsgauge (its schema version is higher than ours)."""


class RunNotFound(StoreError):
    """No run with that id."""


def first_line(exc: BaseException) -> str:
    """A database error's first line (a driver's message may run to several), or its type's name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
