"""The PostgreSQL back end of the run store: one database shared by writers on many machines.

psycopg 3 with a connection pool per process and URL: the monitor and the reports open a store per request,
so a pooled connection makes that an idle-connection checkout instead of a new server session (a few ms and
a server process each). Run ids come from the database (an identity column), so writers never collide;
each run has one writer, and writers of different runs touch different rows. Readers use a pool whose
sessions are read-only (``default_transaction_read_only``), so a reader cannot write even by mistake.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from runstore.errors import SchemaTooNew, StoreError, StoreNotFound, first_line
from runstore.location import redacted
from runstore.schema import RESOLUTIONS, SCHEMA_VERSION, migrations, statements

__all__ = ["PostgresBackend", "close_pools"]

_MIGRATION_LOCK = 0x77736761  # "wsga": one migrating writer at a time, on any machine
_RUN_LOCK = 0x77736762  # open_run's look-up-then-create
_CONNECT_TIMEOUT_S = 10
_pools: dict[tuple[str, bool], ConnectionPool] = {}
_pools_lock = threading.Lock()


def _pool(url: str, readonly: bool) -> ConnectionPool:
    """This process's pool for ``url`` (read-only sessions or not); the first use checks the server answers,
    so a wrong URL is one clear error instead of a pool retrying in the background."""
    key = (url, readonly)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            return pool
        options = {"autocommit": True}
        if readonly:
            options["options"] = "-c default_transaction_read_only=on"
        try:
            psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S, **options).close()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the run store {redacted(url)}: {first_line(exc)}") from exc
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=8,
            kwargs={**options, "connect_timeout": _CONNECT_TIMEOUT_S},
            check=ConnectionPool.check_connection,  # a connection broken by a server restart is replaced
            name=f"wsgauge-runstore{'-ro' if readonly else ''}",
            open=True,
        )
        _pools[key] = pool
        return pool


@atexit.register
def close_pools(url: str | None = None) -> None:
    """Close this process's pools (of ``url`` only, when given): at exit, or before dropping a database."""
    with _pools_lock:
        for key in [k for k in _pools if url is None or k[0] == url]:
            _pools.pop(key).close()


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """The store writes ``?`` placeholders (SQLite's); psycopg takes ``%s``. The store's SQL has no ``%``."""
    return sql.replace("?", "%s")


class PostgresBackend:
    """One pooled connection to a run store database, held until :meth:`close`. Not thread safe."""

    dialect = "postgresql"
    least = "LEAST"
    greatest = "GREATEST"
    database_errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str, *, readonly: bool) -> None:
        self.location = redacted(url)
        self.path = url  # as given: what another process needs to open the same store
        self.readonly = readonly
        self._pool = _pool(url, readonly)
        try:
            self.conn = self._pool.getconn(timeout=_CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            raise StoreError(f"cannot connect to the run store {self.location}: {exc}") from exc
        try:
            self.schema_version = self._prepare()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"run store {self.location}: {first_line(exc)}") from exc
        except BaseException:
            self.close()
            raise
        self.levels: dict[str, tuple[int, ...]] = dict.fromkeys(
            ("latency", "counters", "gauges"), RESOLUTIONS[::-1]
        )

    def _version(self) -> int:
        row = self.conn.execute("SELECT to_regclass('meta')").fetchone()
        if row is None or row[0] is None:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StoreError(f"{self.location} has no schema version")
        return int(row[0])

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.location} uses run-store schema v{version}; this wsgauge reads up to "
                f"v{SCHEMA_VERSION} -- upgrade wsgauge"
            )

    def _prepare(self) -> int:
        version = self._version()
        self._check_not_newer(version)
        if self.readonly:
            if version == 0:
                raise StoreNotFound(f"no run store in {self.location} (run a load test first)")
            return version
        if version < SCHEMA_VERSION:
            # A session lock taken before the transaction: a transaction that begins after another writer's
            # migration committed sees its tables (a lock taken inside one may still see stale catalogs).
            self.conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                version = self._migrate()
            finally:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
        return version

    def _migrate(self) -> int:
        with self.conn.transaction():
            version = self._version()  # another writer may have migrated while we waited
            self._check_not_newer(version)
            for migration in migrations(self.dialect):
                if migration.version <= version:
                    continue
                for statement in statements(migration.sql):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(migration.version),),
                )
                version = migration.version
        return version

    # --- statements -----------------------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(_pg(sql), params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.conn.execute(_pg(sql), params).fetchone()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(_pg(sql), params).rowcount

    def many(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        if seq:
            with self.conn.cursor() as cursor:
                cursor.executemany(_pg(sql), seq)

    @contextlib.contextmanager
    def transaction(self, *, lock: bool = False) -> Iterator[None]:
        """One transaction; ``lock`` serialises it with every other locking writer of the database."""
        with self.conn.transaction():
            if lock:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RUN_LOCK,))
            yield

    def floor_div(self, expression: str) -> str:
        """SQL for ``floor(expression)`` as an integer."""
        return f"CAST(FLOOR({expression}) AS BIGINT)"

    def vacuum(self) -> None:
        self.conn.execute("VACUUM")

    def close(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            self._pool.putconn(conn)
