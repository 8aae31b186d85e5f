"""The run store's schema: its version and the numbered migrations that build it.

Migrations are plain SQL files, ``runstore/migrations/<dialect>/NNNN_what.sql``, run in order by the store
when it opens a store writable; the file number is the schema version it leaves behind, recorded in
``meta.schema_version``. Readers refuse stores newer than they understand (``SchemaTooNew``) rather than
misread them. No Alembic: a handful of append-only files and one runner (below) are the whole need, and an
ORM would add nothing to SQL the store writes by hand for speed. ``docs/run-store.md`` documents every table
and column, and why.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import numpy as np

from runstore import histogram as hdr

__all__ = [
    "LATENCY_COLUMNS",
    "LATENCY_UPSERT",
    "RESOLUTIONS",
    "SCHEMA_VERSION",
    "SQLITE_V1_READ_VIEWS",
    "Migration",
    "hour_rollups",
    "migrations",
    "statements",
]

SCHEMA_VERSION: Final = 2
RESOLUTIONS: Final = (1, 60, 3600)
"""Row resolutions in seconds: per second, and the writer's per-minute and per-hour roll-ups."""
LATENCY_COLUMNS: Final = (
    "count",
    "min_us",
    "max_us",
    "mean_us",
    "p50_us",
    "p90_us",
    "p95_us",
    "p99_us",
    "p999_us",
)
"""The summary columns of a latency row, read off its histogram."""


LATENCY_UPSERT = (
    "INSERT INTO latency (run_id, metric, resolution, t, count, min_us, max_us, mean_us, p50_us, p90_us,"
    " p95_us, p99_us, p999_us, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, metric, resolution, t) DO UPDATE SET count = excluded.count,"
    " min_us = excluded.min_us, max_us = excluded.max_us, mean_us = excluded.mean_us,"
    " p50_us = excluded.p50_us, p90_us = excluded.p90_us, p95_us = excluded.p95_us,"
    " p99_us = excluded.p99_us, p999_us = excluded.p999_us, hist = excluded.hist"
)
"""Write a latency row whole (its histogram already merged with any stored one), on both back ends."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file: running it takes a store from ``version - 1`` to ``version``."""

    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """The migrations of ``dialect`` (``sqlite`` or ``postgresql``), in version order."""
    folder = resources.files("runstore") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        stem = entry.name.removesuffix(".sql")
        if entry.name.endswith(".sql") and stem[:4].isdigit():
            found.append(Migration(int(stem[:4]), stem, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def statements(sql: str) -> list[str]:
    """Split an SQL script into statements (SQLite's own parser decides where one ends)."""
    out, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        if not buffer and line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out


def hour_rollups(
    minute_rows: Iterable[Sequence[Any]], write: Callable[[list[tuple[Any, ...]]], None], batch: int = 500
) -> int:
    """Merge per-minute latency rows ``(run_id, metric, t, hist)`` -- sorted by run, metric and ``t`` -- into
    per-hour rows ``(run_id, metric, 3600, t, <LATENCY_COLUMNS>, hist)`` handed to ``write`` in batches.

    The step of migration 2 that SQL cannot do (histograms merge by adding counts); returns rows written.
    """
    pending: list[tuple[Any, ...]] = []
    written = 0
    key: tuple[Any, Any, int] | None = None
    total: np.ndarray | None = None

    def flush_hour() -> None:
        nonlocal written
        if key is None or total is None:
            return
        histogram = hdr.from_counts(total)
        summary = hdr.summarize(histogram)
        pending.append(
            (*key[:2], 3600, key[2], *(summary[c] for c in LATENCY_COLUMNS), hdr.encode(histogram))
        )
        written += 1
        if len(pending) >= batch:
            write(pending)
            pending.clear()

    for run_id, metric, t, blob in minute_rows:
        hour_key = (run_id, metric, int(t) // 3600 * 3600)
        if hour_key != key:
            flush_hour()
            key, total = hour_key, hdr.counts_view(hdr.decode(blob)).copy()
        else:
            assert total is not None
            total += hdr.counts_view(hdr.decode(blob))
    flush_hour()
    if pending:
        write(pending)
    return written


SQLITE_V1_READ_VIEWS: Final = (
    "CREATE TEMP VIEW runs AS SELECT *, 'load' AS kind, json_extract(machine, '$.hostname') AS host,"
    " NULL AS tag, git_commit AS build FROM main.runs",
    "CREATE TEMP VIEW counters AS SELECT run_id, name, 1 AS resolution, t, value FROM main.counters",
    "CREATE TEMP VIEW gauges AS SELECT run_id, name, 1 AS resolution, t, sum, count, min, max, 1 AS seconds"
    " FROM main.gauges",
)
"""A v1 file opened read-only is read through these (temp views shadow the main tables): the v2 columns
take the values migration 2 would give them, and counters and gauges have per-second rows only."""
