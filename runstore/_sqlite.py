"""The SQLite back end of the run store: one file, WAL mode, one writer and any number of read-only readers.

The store's SQL is written once (``?`` placeholders, standard upserts); this module opens the file, runs the
migrations and answers the few things that differ by dialect.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from runstore.errors import SchemaTooNew, StoreCorrupt, StoreNotFound
from runstore.schema import (
    LATENCY_UPSERT,
    RESOLUTIONS,
    SCHEMA_VERSION,
    SQLITE_V1_READ_VIEWS,
    hour_rollups,
    migrations,
    statements,
)

__all__ = ["SQLiteBackend"]

DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)


class SQLiteBackend:
    """One connection to a run store file. Not thread safe: one per thread."""

    dialect = "sqlite"
    least = "MIN"
    greatest = "MAX"
    database_errors = DATABASE_ERRORS

    def __init__(self, path: str | Path, *, readonly: bool) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.readonly = readonly
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreNotFound(f"no run store at {self.path} (run a load test first)")
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreCorrupt(f"cannot open run store {self.path}: {exc}") from exc
        try:
            self.schema_version = self._prepare()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreCorrupt(f"{self.path} is not a readable wsgauge run store: {exc}") from exc
        except BaseException:
            self.db.close()
            raise
        # Which roll-ups the readers may use: a v1 file read as it is has per-second counters and gauges only.
        v1 = self.schema_version < 2
        self.levels: dict[str, tuple[int, ...]] = {
            "latency": (60, 1) if v1 else RESOLUTIONS[::-1],
            "counters": (1,) if v1 else RESOLUTIONS[::-1],
            "gauges": (1,) if v1 else RESOLUTIONS[::-1],
        }

    # --- opening and migrating ------------------------------------------------------------------------------

    def _version(self) -> int:
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StoreCorrupt(f"{self.path} has no schema version")
        try:
            return int(row[0])
        except ValueError as exc:
            raise StoreCorrupt(f"{self.path} has a malformed schema version {row[0]!r}") from exc

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} uses run-store schema v{version}; this wsgauge reads up to "
                f"v{SCHEMA_VERSION} -- upgrade wsgauge"
            )

    def _prepare(self) -> int:
        db = self.db
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA foreign_keys = ON")
        if self.readonly:
            version = self._version()
            if version == 0:
                raise StoreCorrupt(f"{self.path} is an SQLite file but not a wsgauge run store")
            self._check_not_newer(version)
            if version < 2:
                for view in SQLITE_V1_READ_VIEWS:
                    db.execute(view)
            return version
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        version = self._version()
        self._check_not_newer(version)
        if version < SCHEMA_VERSION:
            version = self._migrate()
        return version

    def _migrate(self) -> int:
        """Run the migrations the file lacks, in one transaction under the write lock (so two writers opening
        the same old file at once upgrade it once)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            self._check_not_newer(version)
            for migration in migrations(self.dialect):
                if migration.version <= version:
                    continue
                for statement in statements(migration.sql):
                    db.execute(statement)
                if migration.version == 2:
                    self._fill_latency_hours()
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(migration.version),),
                )
                version = migration.version
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return version

    def _fill_latency_hours(self) -> None:
        cursor = self.db.execute(
            "SELECT run_id, metric, t, hist FROM latency WHERE resolution = 60 ORDER BY run_id, metric, t"
        )
        rows = cursor.fetchall()  # the per-hour inserts below must not run while this cursor is open
        hour_rollups(rows, lambda batch: self.db.executemany(LATENCY_UPSERT, batch))

    # --- statements -----------------------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.db.execute(sql, params).fetchone()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, params).rowcount

    def many(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        if seq:
            self.db.executemany(sql, seq)

    @contextlib.contextmanager
    def transaction(self, *, lock: bool = False) -> Iterator[None]:
        """One transaction; ``lock`` takes the write lock at once (read-then-write without a race)."""
        if lock:
            self.db.execute("BEGIN IMMEDIATE")
        with self.db:
            yield

    def floor_div(self, expression: str) -> str:
        """SQL for ``floor(expression)`` as an integer, ``expression`` non-negative."""
        return f"CAST({expression} AS INTEGER)"

    def vacuum(self) -> None:
        self.db.execute("VACUUM")

    def close(self) -> None:
        self.db.close()
