"""The run store: samples of a run in, DataFrames and merged histograms out, on SQLite or PostgreSQL.

One writer per run -- the process that owns it (the Locust master, the only process, or a probe) -- appends
samples while the run goes on; any number of readers (the monitor, the reports) follow it concurrently.

Writes merge: a second that arrives twice (two workers, or a late report) is added to what is stored, exactly,
so the writer never needs to hold data back. The writer also keeps per-minute and per-hour roll-ups of every
latency histogram, counter and gauge (exact merges), so reading a day touches 1,440 or 24 rows per series
instead of 86,400, and a long-lived probe can drop old per-second rows (:meth:`RunStore.apply_retention`)
and still be read exactly at minute or hour buckets.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from hdrh.histogram import HdrHistogram

from runstore import histogram as hdr
from runstore._sqlite import SQLiteBackend
from runstore.errors import RunNotFound, SchemaTooNew, StoreCorrupt, StoreError, StoreNotFound
from runstore.lazy import LazyModule
from runstore.samples import ConnectionEvent, SecondSample
from runstore.schema import LATENCY_COLUMNS, LATENCY_UPSERT, RESOLUTIONS

if TYPE_CHECKING:
    import pandas as pd

    from runstore._postgres import PostgresBackend
else:
    pd = LazyModule("pandas")  # the read side's DataFrames: a writing load generator never imports it

Backend = Union[SQLiteBackend, "PostgresBackend"]

__all__ = [
    "DEFAULT_KEEP_MINUTES_S",
    "DEFAULT_KEEP_SECONDS_S",
    "DEFAULT_RESULTS",
    "POSTGRES_SCHEMES",
    "RESOLUTIONS",
    "ROLLUP_SECONDS",
    "RUN_KINDS",
    "RUN_STATUSES",
    "STALE_AFTER_S",
    "RunInfo",
    "RunNotFound",
    "RunRecord",
    "RunStore",
    "SchemaTooNew",
    "StoreCorrupt",
    "StoreError",
    "StoreNotFound",
]

DEFAULT_RESULTS = Path("results") / "wsgauge.sqlite3"
"""Where runs are stored unless ``--results PATH`` says otherwise (relative to the working directory)."""
ROLLUP_SECONDS = 60
"""The per-minute roll-up resolution (the per-hour one is 3600: :data:`RESOLUTIONS`)."""
STALE_AFTER_S = 15.0
"""A ``running`` run whose writer has not written for this long is shown as stale (its writer died)."""
RUN_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")
RUN_KINDS = ("load", "probe")
"""``load``: a bounded load test; ``probe``: an open-ended production probe (continued on restart)."""
DEFAULT_KEEP_SECONDS_S = 86_400.0
"""Default retention of per-second rows: a day (the monitor's 15-minute window reads seconds)."""
DEFAULT_KEEP_MINUTES_S = 30 * 86_400.0
"""Default retention of per-minute rows: 30 days (24-hour and 7-day windows read minutes). Hours stay."""

_LATENCY_COLUMNS = LATENCY_COLUMNS
_RUN_COLUMNS = (
    "id, name, started_at, ended_at, heartbeat_at, status, target, options, versions, machine, git_commit,"
    " summary, kind, host, tag, build"
)
_SERIES_TABLES = ("latency", "counters", "gauges")
POSTGRES_SCHEMES = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL run store (``postgresql://user@host/db``); anything else is an SQLite path."""


@dataclass(frozen=True)
class RunInfo:
    """What the writer knows about a run when it starts.

    ``host`` defaults to ``machine["hostname"]`` (else this machine's name), ``build`` to ``git_commit``.
    """

    name: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)
    machine: Mapping[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    started_at: float | None = None
    kind: str = "load"
    host: str | None = None
    tag: str | None = None
    build: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """A run as stored."""

    id: int
    name: str
    started_at: float
    ended_at: float | None
    heartbeat_at: float
    status: str
    target: str
    options: dict[str, Any]
    versions: dict[str, Any]
    machine: dict[str, Any]
    git_commit: str | None
    summary: dict[str, Any] | None
    kind: str = "load"
    host: str | None = None
    tag: str | None = None
    build: str | None = None

    def is_live(self, now: float | None = None) -> bool:
        """Whether the run is being written right now (running, with a recent heartbeat)."""
        now = time.time() if now is None else now
        return self.status == "running" and now - self.heartbeat_at < STALE_AFTER_S

    def is_stale(self, now: float | None = None) -> bool:
        """Whether the run says ``running`` but its writer has gone quiet (killed, crashed)."""
        return self.status == "running" and not self.is_live(now)

    @property
    def duration_s(self) -> float:
        """Seconds from start to end (or to the last write while running)."""
        return (self.ended_at if self.ended_at is not None else self.heartbeat_at) - self.started_at


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _range_clause(start: float | None, end: float | None, column: str = "t") -> tuple[str, list[Any]]:
    clause, params = "", []
    if start is not None:
        clause += f" AND {column} >= ?"
        params.append(start)
    if end is not None:
        clause += f" AND {column} < ?"
        params.append(end)
    return clause, params


def _in_clause(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """``AND column IN (?, ...)`` and its parameters (callers handle an empty ``values`` themselves)."""
    return f" AND {column} IN ({', '.join('?' * len(values))})", list(values)


def _prefix_clause(prefix: str | None) -> tuple[str, list[Any]]:
    if not prefix:
        return "", []
    return " AND substr(name, 1, length(?)) = ?", [prefix, prefix]


def cover(
    levels: Sequence[int], width: int | None, start: float | None, end: float | None
) -> list[tuple[int, int | None, int | None]]:
    """Which rows answer ``start <= t < end`` in buckets of ``width`` seconds exactly, coarsest first.

    ``levels`` are the resolutions stored (coarsest first, ending with 1). A level serves when it divides
    ``width`` (any level when ``width`` is ``None``: one bucket); the coarsest that serves takes the whole
    rows inside the range, finer levels the ragged edges. Returns ``(resolution, lo, hi)`` parts, ``None`` =
    unbounded. Integer seconds: ``t >= start`` is ``t >= ceil(start)``, ``t < end`` is ``t < ceil(end)``.
    """
    usable = [r for r in levels if width is None or width % r == 0] or [1]
    lo = None if start is None else math.ceil(start)
    hi = None if end is None else math.ceil(end)
    return _cover(usable, lo, hi)


def _cover(levels: Sequence[int], lo: int | None, hi: int | None) -> list[tuple[int, int | None, int | None]]:
    if lo is not None and hi is not None and lo >= hi:
        return []
    r = levels[0]
    if len(levels) == 1:
        return [(r, lo, hi)]
    a = None if lo is None else -(-lo // r) * r
    b = None if hi is None else hi // r * r
    if a is not None and b is not None and a >= b:
        return _cover(levels[1:], lo, hi)
    parts = [(r, a, b)]
    if lo is not None and a is not None and lo < a:
        parts += _cover(levels[1:], lo, a)
    if hi is not None and b is not None and b < hi:
        parts += _cover(levels[1:], b, hi)
    return parts


def _combine(old: float | None, new: float | None, pick: Any) -> float | None:
    if old is None:
        return new
    if new is None:
        return old
    return pick(old, new)


class RunStore:
    """A run store, opened for writing or read-only. Use :meth:`open`.

    Instances are not thread safe; one per thread (or greenlet hub). Use as a context manager to close.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.readonly = backend.readonly
        self.schema_version = backend.schema_version
        self.location = backend.location
        """The store's location as given (a file path, or a ``postgresql://`` URL)."""
        self.path: Path | str = getattr(backend, "path", backend.location)

    @property
    def _db(self) -> Any:
        """The SQLite connection (tests and tools that must see the file itself)."""
        return self._backend.db

    # --- opening --------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> RunStore:
        """Open (for writing: create or upgrade if needed) the store at ``path``: an SQLite file path, or a
        ``postgresql://user@host/db`` URL (libpq's URL: password, port, ``?sslmode=`` ... as psql takes them).

        Opening writable runs the migrations the store lacks (a v1 file upgrades in place). Read-only, a v1
        file is read as it is: runs have kind ``load``, their host from ``machine``, and no tag.

        Raises:
            StoreNotFound: read-only and no file at ``path``.
            StoreCorrupt: the file is not an SQLite database with a wsgauge schema.
            StoreError: the database cannot be reached, or the URL's scheme is not served.
            SchemaTooNew: the store's schema version is newer than this wsgauge understands.
        """
        text = os.fspath(path)
        scheme = text.split("://", 1)[0].lower() if "://" in text else None
        if scheme in POSTGRES_SCHEMES:
            from runstore._postgres import PostgresBackend  # psycopg loads only for a PostgreSQL store

            return cls(PostgresBackend(text, readonly=readonly))
        if scheme is not None:
            raise StoreError(f"run store {text!r}: '{scheme}://' stores are not supported")
        return cls(SQLiteBackend(path, readonly=readonly))

    def close(self) -> None:
        """Close the store (committing nothing that is not already committed)."""
        self._backend.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing: runs --------------------------------------------------------------------------------------

    def create_run(self, info: RunInfo) -> int:
        """Record a new run as ``running`` and return its id.

        Raises:
            ValueError: ``info.kind`` is not one of :data:`RUN_KINDS`.
        """
        with self._backend.transaction():
            return self._insert_run(info)

    def _insert_run(self, info: RunInfo) -> int:
        if info.kind not in RUN_KINDS:
            raise ValueError(f"run kind {info.kind!r}: must be one of {', '.join(RUN_KINDS)}")
        started = time.time() if info.started_at is None else info.started_at
        host = info.host or info.machine.get("hostname") or socket.gethostname()
        build = info.build if info.build is not None else info.git_commit
        row = self._backend.one(
            "INSERT INTO runs (name, started_at, heartbeat_at, status, target, options, versions,"
            " git_commit, machine, kind, host, tag, build)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                info.name,
                started,
                started,
                info.target,
                _json(dict(info.options)),
                _json(dict(info.versions)),
                info.git_commit,
                _json(dict(info.machine)),
                info.kind,
                str(host),
                info.tag,
                build,
            ),
        )
        assert row is not None
        return int(row[0])

    def find_run(self, kind: str, name: str) -> RunRecord | None:
        """The newest run of ``kind`` named ``name``, or ``None``."""
        row = self._backend.one(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE kind = ? AND name = ? ORDER BY started_at DESC, id DESC"
            " LIMIT 1",
            (kind, name),
        )
        return None if row is None else self._record(row)

    def open_run(self, info: RunInfo) -> int:
        """Continue the newest run of ``info.kind`` named ``info.name``, or create it; returns its id.

        What a restarted probe calls to carry on its one series: the run goes back to ``running`` (its end
        time cleared), keeps its id, start and samples, and takes ``info``'s target, options, versions,
        machine, host, tag and build (the restarted process's). Lookup and creation are one locked
        transaction, so two writers opening the same name at once get one run.
        """
        with self._backend.transaction(lock=True):
            row = self._backend.one(
                "SELECT id FROM runs WHERE kind = ? AND name = ? ORDER BY started_at DESC, id DESC LIMIT 1",
                (info.kind, info.name),
            )
            if row is None:
                return self._insert_run(info)
            run_id = int(row[0])
            host = info.host or info.machine.get("hostname") or socket.gethostname()
            self._backend.run(
                "UPDATE runs SET status = 'running', ended_at = NULL, heartbeat_at = ?, target = ?,"
                " options = ?, versions = ?, machine = ?, git_commit = ?, host = ?, tag = ?, build = ?"
                " WHERE id = ?",
                (
                    time.time(),
                    info.target,
                    _json(dict(info.options)),
                    _json(dict(info.versions)),
                    _json(dict(info.machine)),
                    info.git_commit,
                    str(host),
                    info.tag,
                    info.build if info.build is not None else info.git_commit,
                    run_id,
                ),
            )
            return run_id

    # --- writing: samples -----------------------------------------------------------------------------------

    def write_samples(self, run_id: int, samples: Iterable[SecondSample]) -> None:
        """Add samples to the run in one transaction, merging with what is stored (seconds and roll-ups)."""
        samples = list(samples)
        with self._backend.transaction():
            if samples:
                self._write_latency(run_id, samples)
                self._write_counters(run_id, samples)
                self._write_gauges(run_id, samples)
            self._touch(run_id)

    def _write_latency(self, run_id: int, samples: Sequence[SecondSample]) -> None:
        merged: dict[tuple[str, int, int], np.ndarray] = {}
        for sample in samples:
            second = sample.second
            for metric, histogram in sample.latency.items():
                counts = hdr.counts_view(histogram)
                for r in RESOLUTIONS:
                    key = (metric, r, second - second % r)
                    total = merged.get(key)
                    if total is None:
                        merged[key] = counts.copy()
                    else:
                        total += counts
        if not merged:
            return
        metrics = sorted({k[0] for k in merged})
        for r in RESOLUTIONS:
            ts = [k[2] for k in merged if k[1] == r]
            extra, params = _in_clause("metric", metrics)
            stored = self._backend.rows(
                "SELECT metric, t, hist FROM latency"
                " WHERE run_id = ? AND resolution = ? AND t >= ? AND t <= ?" + extra,
                [run_id, r, min(ts), max(ts), *params],
            )
            for metric, t, blob in stored:
                total = merged.get((metric, r, int(t)))
                if total is not None:
                    total += hdr.counts_view(hdr.decode(blob))
        rows = []
        for (metric, r, t), counts in merged.items():
            histogram = hdr.from_counts(counts)
            summary = hdr.summarize(histogram)
            rows.append(
                (run_id, metric, r, t, *(summary[c] for c in _LATENCY_COLUMNS), hdr.encode(histogram))
            )
        self._backend.many(LATENCY_UPSERT, rows)

    def _write_counters(self, run_id: int, samples: Sequence[SecondSample]) -> None:
        totals: dict[tuple[str, int, int], int] = {}
        for sample in samples:
            second = sample.second
            for name, value in sample.counters.items():
                for r in RESOLUTIONS:
                    key = (name, r, second - second % r)
                    totals[key] = totals.get(key, 0) + int(value)
        self._backend.many(
            "INSERT INTO counters (run_id, name, resolution, t, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, name, resolution, t)"
            " DO UPDATE SET value = counters.value + excluded.value",
            [(run_id, n, r, t, v) for (n, r, t), v in totals.items()],
        )

    def _write_gauges(self, run_id: int, samples: Sequence[SecondSample]) -> None:
        seconds = [s.second for s in samples if s.gauges]
        if not seconds:
            return
        # A roll-up counts the seconds that have a row: a second already stored (a late report) adds none.
        seen = {
            (name, int(t))
            for name, t in self._backend.rows(
                "SELECT name, t FROM gauges WHERE run_id = ? AND resolution = 1 AND t >= ? AND t <= ?",
                (run_id, min(seconds), max(seconds)),
            )
        }
        acc: dict[tuple[str, int, int], list[Any]] = {}
        for sample in samples:
            second = sample.second
            for name, g in sample.gauges.items():
                new = (name, second) not in seen
                seen.add((name, second))
                lo = g.min if g.count else None
                hi = g.max if g.count else None
                for r in RESOLUTIONS:
                    key = (name, r, second - second % r)
                    row = acc.get(key)
                    if row is None:
                        acc[key] = [float(g.sum), int(g.count), lo, hi, int(new)]
                    else:
                        row[0] += float(g.sum)
                        row[1] += int(g.count)
                        row[2] = _combine(row[2], lo, min)
                        row[3] = _combine(row[3], hi, max)
                        row[4] += int(new)
        least, greatest = self._backend.least, self._backend.greatest
        self._backend.many(
            "INSERT INTO gauges (run_id, name, resolution, t, sum, count, min, max, seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, name, resolution, t) DO UPDATE SET"
            " sum = gauges.sum + excluded.sum, count = gauges.count + excluded.count,"
            " min = CASE WHEN gauges.min IS NULL THEN excluded.min WHEN excluded.min IS NULL"
            f"   THEN gauges.min ELSE {least}(gauges.min, excluded.min) END,"
            " max = CASE WHEN gauges.max IS NULL THEN excluded.max WHEN excluded.max IS NULL"
            f"   THEN gauges.max ELSE {greatest}(gauges.max, excluded.max) END,"
            " seconds = gauges.seconds + excluded.seconds",
            [(run_id, n, r, t, *row) for (n, r, t), row in acc.items()],
        )

    def write_events(self, run_id: int, events: Iterable[ConnectionEvent]) -> None:
        """Append events (connection transitions; a probe's ``alert_firing`` / ``alert_resolved``)."""
        with self._backend.transaction():
            self._backend.many(
                'INSERT INTO events (run_id, ts, "user", kind, detail) VALUES (?, ?, ?, ?, ?)',
                [(run_id, e.ts, e.user, e.kind, e.detail) for e in events],
            )

    def write_server_metrics(self, run_id: int, t: float, values: Mapping[str, float]) -> None:
        """Store one scrape of the target's server metrics, taken at unix time ``t``."""
        second = math.floor(t)
        with self._backend.transaction():
            self._backend.many(
                "INSERT INTO server_metrics (run_id, name, t, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (run_id, name, t) DO UPDATE SET value = excluded.value",
                [(run_id, n, second, float(v)) for n, v in values.items() if math.isfinite(v)],
            )
            self._touch(run_id)

    def heartbeat(self, run_id: int, now: float | None = None) -> None:
        """Mark the run as still being written (readers show runs without a recent heartbeat as stale)."""
        with self._backend.transaction():
            self._touch(run_id, now)

    def _touch(self, run_id: int, now: float | None = None) -> None:
        self._backend.run(
            "UPDATE runs SET heartbeat_at = ? WHERE id = ?",
            (time.time() if now is None else now, run_id),
        )

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        ended_at: float | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """Finalise a run: set its end time, final status and summary."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"a finished run's status must be one of {RUN_STATUSES[1:]}")
        ended = time.time() if ended_at is None else ended_at
        with self._backend.transaction():
            count = self._backend.run(
                "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?, summary = ? WHERE id = ?",
                (status, ended, ended, None if summary is None else _json(dict(summary)), run_id),
            )
        if count == 0:
            raise RunNotFound(f"no run {run_id} in {self.location}")

    # --- retention ------------------------------------------------------------------------------------------

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete runs and all their data; returns how many runs were deleted."""
        deleted = 0
        with self._backend.transaction():
            for run_id in run_ids:
                for table in (*_SERIES_TABLES, "events", "server_metrics"):
                    self._backend.run(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                deleted += self._backend.run("DELETE FROM runs WHERE id = ?", (run_id,))
        return deleted

    def apply_retention(
        self,
        run_id: int,
        *,
        keep_seconds: float | None = DEFAULT_KEEP_SECONDS_S,
        keep_minutes: float | None = DEFAULT_KEEP_MINUTES_S,
        now: float | None = None,
    ) -> dict[str, int]:
        """Drop a run's fine rows older than the retention: what keeps a months-long probe's store bounded.

        Per-second rows (latency, counters, gauges, server metrics) older than ``keep_seconds`` and
        per-minute roll-ups older than ``keep_minutes`` go; per-hour roll-ups and events stay. Cut-offs
        fall on whole minutes (hours) so that the coarser rows that remain answer every minute (hour)
        bucket there exactly: the writer keeps every roll-up from the first sample on, so it exists before
        its seconds go. ``None`` keeps that level. Returns rows deleted per table.

        Raises:
            ValueError: ``keep_minutes`` shorter than ``keep_seconds`` (minutes would go where seconds
                stay, and a bucketed read there would pick the missing minutes), or negative.
        """
        for value in (keep_seconds, keep_minutes):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError("retention must be a non-negative number of seconds")
        if keep_minutes is not None and (keep_seconds is None or keep_minutes < keep_seconds):
            raise ValueError("keep_minutes must be at least keep_seconds: minutes are kept longer")
        now = time.time() if now is None else now
        deleted = {table: 0 for table in (*_SERIES_TABLES, "server_metrics")}
        with self._backend.transaction():
            for resolution, keep, align in ((1, keep_seconds, 60), (60, keep_minutes, 3600)):
                if keep is None:
                    continue
                cutoff = math.floor((now - keep) / align) * align
                for table in _SERIES_TABLES:
                    deleted[table] += self._backend.run(
                        f"DELETE FROM {table} WHERE run_id = ? AND resolution = ? AND t < ?",
                        (run_id, resolution, cutoff),
                    )
                if resolution == 1:
                    deleted["server_metrics"] += self._backend.run(
                        "DELETE FROM server_metrics WHERE run_id = ? AND t < ?", (run_id, cutoff)
                    )
        return deleted

    def vacuum(self) -> None:
        """Give the space of deleted runs back to the file system."""
        self._backend.vacuum()

    # --- reading: runs --------------------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        kind: str | None = None,
        host: str | None = None,
        tag: str | None = None,
        build: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; each filter given keeps the runs whose column equals it."""
        clause, params = "", []
        for column, value in (("kind", kind), ("host", host), ("tag", tag), ("build", build)):
            if value is not None:
                clause += f" AND {column} = ?"
                params.append(value)
        rows = self._backend.rows(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE 1 = 1{clause} ORDER BY started_at DESC, id DESC", params
        )
        return [self._record(row) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """One run.

        Raises:
            RunNotFound: if there is no such run.
        """
        row = self._backend.one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise RunNotFound(f"no run {run_id} in {self.location}")
        return self._record(row)

    def latest_run_id(self) -> int | None:
        """The newest run's id, or ``None`` for an empty store."""
        row = self._backend.one("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1")
        return None if row is None else int(row[0])

    @staticmethod
    def _record(row: Sequence[Any]) -> RunRecord:
        return RunRecord(
            id=int(row[0]),
            name=row[1],
            started_at=row[2],
            ended_at=row[3],
            heartbeat_at=row[4],
            status=row[5],
            target=row[6],
            options=_load_json(row[7]) or {},
            versions=_load_json(row[8]) or {},
            machine=_load_json(row[9]) or {},
            git_commit=row[10],
            summary=_load_json(row[11]),
            kind=row[12],
            host=row[13],
            tag=row[14],
            build=row[15],
        )

    # --- reading: series ------------------------------------------------------------------------------------

    def _frame(self, sql: str, params: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
        rows = self._backend.rows(sql, params)
        return pd.DataFrame.from_records(rows, columns=list(columns))

    def _union(
        self,
        table: str,
        columns: str,
        run_id: int,
        width: int | None,
        start: float | None,
        end: float | None,
        extra: str = "",
        extra_params: Sequence[Any] = (),
    ) -> tuple[str, list[Any]]:
        """A ``UNION ALL`` of ``table``'s rows covering the range for buckets of ``width`` (:func:`cover`)."""
        parts, params = [], []
        for resolution, lo, hi in cover(self._backend.levels[table], width, start, end):
            clause, range_params = _range_clause(lo, hi)
            parts.append(f"SELECT {columns} FROM {table} WHERE run_id = ? AND resolution = ?{clause}{extra}")
            params += [run_id, resolution, *range_params, *extra_params]
        return " UNION ALL ".join(parts), params

    def time_range(self, run_id: int) -> tuple[int, int] | None:
        """First and last second holding any sample (latency, counter or gauge), or ``None``.

        Where retention dropped the first seconds, the first is the start of the oldest roll-up left.
        """
        levels = sorted({r for table in _SERIES_TABLES for r in self._backend.levels[table]}, reverse=True)
        first: int | None = None
        first_ends = 0
        last: dict[int, int] = {}
        for resolution in levels:  # coarsest first; a finer first row inside the coarser first bucket wins
            parts = [
                f"SELECT MIN(t) AS lo, MAX(t) AS hi FROM {table} WHERE run_id = ? AND resolution = ?"
                for table in _SERIES_TABLES
                if resolution in self._backend.levels[table]
            ]
            row = self._backend.one(
                f"SELECT MIN(lo), MAX(hi) FROM ({' UNION ALL '.join(parts)}) AS x",
                [p for _ in parts for p in (run_id, resolution)],
            )
            if row is None or row[0] is None:
                continue
            lo, last[resolution] = int(row[0]), int(row[1])
            if first is None or lo < first_ends:
                first, first_ends = lo, lo + resolution
        if first is None:
            return None
        return first, last[1] if 1 in last else max(last.values())

    def latency_metrics(self, run_id: int) -> list[str]:
        """Names of the latency metrics the run has, sorted."""
        rows = self._backend.rows(
            "SELECT DISTINCT metric FROM latency WHERE run_id = ? AND resolution = ? ORDER BY metric",
            (run_id, self._backend.levels["latency"][0]),
        )
        return [r[0] for r in rows]

    def latency(
        self,
        run_id: int,
        metrics: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        *,
        resolution: int = 1,
        with_hist: bool = False,
    ) -> pd.DataFrame:
        """Latency rows ``metric, t, count, min_us, ..., p999_us[, hist]`` with ``start <= t < end``.

        Args:
            resolution: 1 for per-second rows, 60 / 3600 for the per-minute / per-hour roll-ups.
            with_hist: include the encoded histogram of each row (to merge ranges exactly).
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}")
        columns = ["metric", "t", *_LATENCY_COLUMNS] + (["hist"] if with_hist else [])
        clause, params = _range_clause(start, end)
        if metrics is not None:
            if not metrics:
                return pd.DataFrame(columns=columns)
            extra, extra_params = _in_clause("metric", metrics)
            clause += extra
            params += extra_params
        return self._frame(
            f"SELECT {', '.join(columns)} FROM latency WHERE run_id = ? AND resolution = ?{clause}"
            " ORDER BY metric, t",
            [run_id, resolution, *params],
            columns,
        )

    def latency_bucketed(
        self,
        run_id: int,
        width: int,
        metrics: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        *,
        with_hist: bool = False,
    ) -> pd.DataFrame:
        """Latency per bucket of ``width`` seconds, histograms merged exactly: the columns of :meth:`latency`.

        Reads the coarsest rows that are exact for the buckets and range (hours for a week in hour buckets,
        seconds at the ragged edges): the same numbers as merging the per-second rows, where they remain.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        columns = ["metric", "t", *_LATENCY_COLUMNS] + (["hist"] if with_hist else [])
        extra, extra_params = "", []
        if metrics is not None:
            if not metrics:
                return pd.DataFrame(columns=columns)
            extra, extra_params = _in_clause("metric", metrics)
        union, params = self._union(
            "latency", "metric, t, hist", run_id, width, start, end, extra, extra_params
        )
        totals: dict[tuple[str, int], np.ndarray] = {}
        for metric, t, blob in self._backend.rows(union, params):
            key = (metric, int(t) // width * width)
            counts = hdr.counts_view(hdr.decode(blob))
            if key in totals:
                totals[key] += counts
            else:
                totals[key] = counts.copy()
        records = []
        for (metric, t), counts in sorted(totals.items()):
            histogram = hdr.from_counts(counts)
            summary = hdr.summarize(histogram)
            record = [metric, t, *(summary[c] for c in _LATENCY_COLUMNS)]
            if with_hist:
                record.append(hdr.encode(histogram))
            records.append(record)
        return pd.DataFrame.from_records(records, columns=columns)

    def merged_histogram(
        self, run_id: int, metric: str, start: float | None = None, end: float | None = None
    ) -> HdrHistogram:
        """Merge ``metric``'s histograms over ``start <= t < end`` exactly (empty histogram if none).

        Whole hours inside the range come from the per-hour roll-ups, whole minutes around them from the
        per-minute ones, the ragged edges from seconds.
        """
        union, params = self._union("latency", "hist", run_id, None, start, end, " AND metric = ?", [metric])
        return hdr.merge_encoded(r[0] for r in self._backend.rows(union, params))

    def counters(
        self,
        run_id: int,
        prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Per-second counter rows ``name, t, value``, optionally only names starting with ``prefix``."""
        clause, params = _range_clause(start, end)
        extra, extra_params = _prefix_clause(prefix)
        return self._frame(
            f"SELECT name, t, value FROM counters WHERE run_id = ? AND resolution = 1{clause}{extra}"
            " ORDER BY name, t",
            [run_id, *params, *extra_params],
            ["name", "t", "value"],
        )

    def gauges(
        self,
        run_id: int,
        names: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Per-second gauge rows ``name, t, sum, count, min, max, mean``."""
        clause, params = _range_clause(start, end)
        if names is not None:
            if not names:
                return pd.DataFrame(columns=["name", "t", "sum", "count", "min", "max", "mean"])
            extra, extra_params = _in_clause("name", names)
            clause += extra
            params += extra_params
        frame = self._frame(
            f"SELECT name, t, sum, count, min, max FROM gauges WHERE run_id = ? AND resolution = 1{clause}"
            " ORDER BY name, t",
            [run_id, *params],
            ["name", "t", "sum", "count", "min", "max"],
        )
        return _with_mean(frame)

    def counters_bucketed(
        self,
        run_id: int,
        width: int,
        prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Counter sums per bucket of ``width`` seconds: rows ``name, t, value`` (``t`` = bucket start).

        The same numbers as summing :meth:`counters` per bucket, aggregated in the database from the
        coarsest rows exact for the buckets and range (see :func:`cover`). Buckets start at whole multiples
        of ``width``; empty buckets have no row.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        extra, extra_params = _prefix_clause(prefix)
        union, params = self._union(
            "counters", "name, t, value", run_id, width, start, end, extra, extra_params
        )
        return self._frame(
            f"SELECT name, (t / ?) * ? AS b, CAST(SUM(value) AS BIGINT) FROM ({union}) AS x"
            " GROUP BY name, b ORDER BY name, b",
            [int(width), int(width), *params],
            ["name", "t", "value"],
        )

    def gauges_bucketed(
        self,
        run_id: int,
        width: int,
        names: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Gauge statistics per bucket of ``width`` seconds: ``name, t, sum, count, min, max, seconds, mean``.

        ``sum``/``count``/``min``/``max`` combine the bucket's per-second rows exactly (``mean`` = sum /
        count, the mean observation); ``seconds`` is how many seconds had a row, so ``sum / seconds`` is the
        mean per-second total (e.g. users connected). Aggregated in the database from the coarsest rows
        exact for the buckets and range; buckets start at whole multiples of ``width``.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        columns = ["name", "t", "sum", "count", "min", "max", "seconds"]
        extra, extra_params = "", []
        if names is not None:
            if not names:
                return pd.DataFrame(columns=[*columns, "mean"])
            extra, extra_params = _in_clause("name", names)
        union, params = self._union(
            "gauges", "name, t, sum, count, min, max, seconds", run_id, width, start, end, extra, extra_params
        )
        frame = self._frame(
            "SELECT name, (t / ?) * ? AS b, SUM(sum), CAST(SUM(count) AS BIGINT), MIN(min), MAX(max),"
            " CAST(SUM(seconds) AS BIGINT)"
            f" FROM ({union}) AS x GROUP BY name, b ORDER BY name, b",
            [int(width), int(width), *params],
            columns,
        )
        return _with_mean(frame)

    def events_bucketed(
        self, run_id: int, width: int, start: float | None = None, end: float | None = None
    ) -> pd.DataFrame:
        """Connection events counted per kind and bucket of ``width`` seconds: rows ``kind, t, count``."""
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        clause, params = _range_clause(start, end, column="ts")
        return self._frame(
            f"SELECT kind, {self._backend.floor_div('ts / ?')} * ? AS b, COUNT(*) FROM events"
            f" WHERE run_id = ?{clause}"
            " GROUP BY kind, b ORDER BY kind, b",
            [int(width), int(width), run_id, *params],
            ["kind", "t", "count"],
        )

    def events(self, run_id: int, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        """Connection events ``ts, user, kind, detail``, in time order."""
        clause, params = _range_clause(start, end, column="ts")
        return self._frame(
            f'SELECT ts, "user", kind, detail FROM events WHERE run_id = ?{clause} ORDER BY ts',
            [run_id, *params],
            ["ts", "user", "kind", "detail"],
        )

    def server_metrics(
        self,
        run_id: int,
        names: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Scraped server metrics ``name, t, value``."""
        clause, params = _range_clause(start, end)
        if names is not None:
            if not names:
                return pd.DataFrame(columns=["name", "t", "value"])
            extra, extra_params = _in_clause("name", names)
            clause += extra
            params += extra_params
        return self._frame(
            f"SELECT name, t, value FROM server_metrics WHERE run_id = ?{clause} ORDER BY name, t",
            [run_id, *params],
            ["name", "t", "value"],
        )

    def server_metric_names(self, run_id: int) -> list[str]:
        """Names of the server metrics scraped during the run, sorted."""
        rows = self._backend.rows(
            "SELECT DISTINCT name FROM server_metrics WHERE run_id = ? ORDER BY name", (run_id,)
        )
        return [r[0] for r in rows]

    def server_metrics_bucketed(
        self,
        run_id: int,
        width: int,
        names: Sequence[str],
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Scraped server metrics per bucket of ``width`` seconds: ``name, t, last_t, last, min, max, mean``.

        ``last`` is the value at ``last_t``, the bucket's latest scrape (counters are cumulative: rates are
        differences of ``last`` over differences of ``last_t``); ``min``/``max``/``mean`` summarise gauges.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        columns = ["name", "t", "last_t", "last", "min", "max", "mean"]
        if not names:
            return pd.DataFrame(columns=columns)
        clause, params = _range_clause(start, end)
        extra, extra_params = _in_clause("name", names)
        clause += extra
        params += extra_params
        args = [int(width), int(width), run_id, *params]
        if self._backend.dialect == "sqlite":
            # With a single MAX() aggregate, SQLite takes the bare column (value) from the row holding MAX(t).
            last_sql = (
                f"SELECT name, (t / ?) * ? AS b, MAX(t), value FROM server_metrics WHERE run_id = ?{clause}"
                " GROUP BY name, b ORDER BY name, b"
            )
        else:
            last_sql = (
                f"SELECT DISTINCT ON (name, b) name, (t / ?) * ? AS b, t, value FROM server_metrics"
                f" WHERE run_id = ?{clause} ORDER BY name, b, t DESC"
            )
        last = self._frame(last_sql, args, columns[:4])
        stats = self._frame(
            f"SELECT name, (t / ?) * ? AS b, MIN(value), MAX(value), AVG(value) FROM server_metrics"
            f" WHERE run_id = ?{clause} GROUP BY name, b ORDER BY name, b",
            args,
            ["name", "b", *columns[4:]],
        )[columns[4:]]
        return pd.concat([last, stats], axis=1)


def _with_mean(frame: pd.DataFrame) -> pd.DataFrame:
    count = frame["count"].to_numpy(dtype=np.float64)
    frame["mean"] = np.divide(
        frame["sum"].to_numpy(dtype=np.float64), count, out=np.zeros_like(count), where=count > 0
    )
    return frame
