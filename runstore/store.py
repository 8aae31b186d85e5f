"""The run store: SQLite edge of the data flow (samples in, DataFrames and merged histograms out).

One writer -- the process that owns a run (the Locust master, or the only process) -- appends samples while
the run goes on; any number of readers (the monitor, the reports) follow it concurrently.
SQLite's WAL mode keeps readers from blocking the writer and vice versa; readers open the file read-only.

Writes merge: a second that arrives twice (two workers, or a late report) is added to what is stored, exactly,
so the writer never needs to hold data back. The writer also keeps per-minute roll-ups of every latency
histogram, so merging a day-long range touches 1,440 rows instead of 86,400.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from runstore import histogram as hdr
from runstore.samples import ConnectionEvent, SecondSample
from runstore.schema import DDL, SCHEMA_VERSION

__all__ = [
    "DEFAULT_RESULTS",
    "ROLLUP_SECONDS",
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
STALE_AFTER_S = 15.0
"""A ``running`` run whose writer has not written for this long is shown as stale (its writer died)."""
RUN_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")

_LATENCY_COLUMNS = (
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


@dataclass(frozen=True)
class RunInfo:
    """What the writer knows about a run when it starts."""

    name: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)
    machine: Mapping[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    started_at: float | None = None


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


class RunStore:
    """A run store file, opened for writing or read-only. Use :meth:`open`.

    Instances are not thread safe; one per thread (or greenlet hub). Use as a context manager to close.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, readonly: bool) -> None:
        self._db = connection
        self.path = path
        self.readonly = readonly

    # --- opening --------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> RunStore:
        """Open (for writing: create if needed) the store at ``path``.

        Raises:
            StoreNotFound: read-only and no file at ``path``.
            StoreCorrupt: the file is not an SQLite database with a wsgauge schema.
            SchemaTooNew: the store's schema version is newer than this wsgauge understands.
        """
        path = Path(path)
        try:
            if readonly:
                if not path.is_file():
                    raise StoreNotFound(f"no run store at {path} (run a load test first)")
                uri = path.resolve().as_uri() + "?mode=ro"
                connection = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreCorrupt(f"cannot open run store {path}: {exc}") from exc
        store = cls(connection, path, readonly)
        try:
            store._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreCorrupt(f"{path} is not a readable wsgauge run store: {exc}") from exc
        except StoreError:
            connection.close()
            raise
        return store

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA foreign_keys = ON")
        if self.readonly:
            has_meta = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if not has_meta:
                raise StoreCorrupt(f"{self.path} is an SQLite file but not a wsgauge run store")
        else:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            with db:
                db.executescript(DDL)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StoreCorrupt(f"{self.path} has no schema version")
        try:
            version = int(row[0])
        except ValueError as exc:
            raise StoreCorrupt(f"{self.path} has a malformed schema version {row[0]!r}") from exc
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} uses run-store schema v{version}; this wsgauge reads up to "
                f"v{SCHEMA_VERSION} -- upgrade wsgauge"
            )
        self.schema_version = version

    def close(self) -> None:
        """Close the file (committing nothing that is not already committed)."""
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing --------------------------------------------------------------------------------------------

    def create_run(self, info: RunInfo) -> int:
        """Record a new run as ``running`` and return its id."""
        started = time.time() if info.started_at is None else info.started_at
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO runs (name, started_at, heartbeat_at, status, target, options, versions,"
                " git_commit, machine) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (
                    info.name,
                    started,
                    started,
                    info.target,
                    _json(dict(info.options)),
                    _json(dict(info.versions)),
                    info.git_commit,
                    _json(dict(info.machine)),
                ),
            )
        return int(cursor.lastrowid)

    def write_samples(self, run_id: int, samples: Iterable[SecondSample]) -> None:
        """Add samples to the run in one transaction, merging with seconds already stored."""
        db = self._db
        with db:
            for sample in samples:
                for metric, histogram in sample.latency.items():
                    self._merge_latency(run_id, metric, 1, sample.second, histogram)
                    minute = sample.second - sample.second % ROLLUP_SECONDS
                    self._merge_latency(run_id, metric, ROLLUP_SECONDS, minute, histogram)
                db.executemany(
                    "INSERT INTO counters (run_id, name, t, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (run_id, name, t) DO UPDATE SET value = value + excluded.value",
                    [(run_id, n, sample.second, v) for n, v in sample.counters.items()],
                )
                db.executemany(
                    "INSERT INTO gauges (run_id, name, t, sum, count, min, max)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id, name, t) DO UPDATE SET"
                    " sum = sum + excluded.sum, count = count + excluded.count,"
                    " min = CASE WHEN min IS NULL THEN excluded.min WHEN excluded.min IS NULL"
                    "   THEN min ELSE MIN(min, excluded.min) END,"
                    " max = CASE WHEN max IS NULL THEN excluded.max WHEN excluded.max IS NULL"
                    "   THEN max ELSE MAX(max, excluded.max) END",
                    [
                        (
                            run_id,
                            n,
                            sample.second,
                            g.sum,
                            g.count,
                            g.min if g.count else None,
                            g.max if g.count else None,
                        )
                        for n, g in sample.gauges.items()
                    ],
                )
            self._touch(run_id)

    def _merge_latency(
        self, run_id: int, metric: str, resolution: int, t: int, histogram: HdrHistogram
    ) -> None:
        row = self._db.execute(
            "SELECT hist FROM latency WHERE run_id = ? AND metric = ? AND resolution = ? AND t = ?",
            (run_id, metric, resolution, t),
        ).fetchone()
        if row is not None:
            counts = hdr.counts_view(hdr.decode(row[0])) + hdr.counts_view(histogram)
            histogram = hdr.from_counts(counts)
        summary = hdr.summarize(histogram)
        self._db.execute(
            "INSERT OR REPLACE INTO latency (run_id, metric, resolution, t, "
            + ", ".join(_LATENCY_COLUMNS)
            + ", hist) VALUES (?, ?, ?, ?"
            + ", ?" * len(_LATENCY_COLUMNS)
            + ", ?)",
            (
                run_id,
                metric,
                resolution,
                t,
                *(summary[c] for c in _LATENCY_COLUMNS),
                hdr.encode(histogram),
            ),
        )

    def write_events(self, run_id: int, events: Iterable[ConnectionEvent]) -> None:
        """Append connection events."""
        with self._db:
            self._db.executemany(
                "INSERT INTO events (run_id, ts, user, kind, detail) VALUES (?, ?, ?, ?, ?)",
                [(run_id, e.ts, e.user, e.kind, e.detail) for e in events],
            )

    def write_server_metrics(self, run_id: int, t: float, values: Mapping[str, float]) -> None:
        """Store one scrape of the target's server metrics, taken at unix time ``t``."""
        second = math.floor(t)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO server_metrics (run_id, name, t, value) VALUES (?, ?, ?, ?)",
                [(run_id, n, second, float(v)) for n, v in values.items() if math.isfinite(v)],
            )
            self._touch(run_id)

    def heartbeat(self, run_id: int, now: float | None = None) -> None:
        """Mark the run as still being written (readers show runs without a recent heartbeat as stale)."""
        with self._db:
            self._touch(run_id, now)

    def _touch(self, run_id: int, now: float | None = None) -> None:
        self._db.execute(
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
        with self._db:
            cursor = self._db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?, summary = ? WHERE id = ?",
                (status, ended, ended, None if summary is None else _json(dict(summary)), run_id),
            )
        if cursor.rowcount == 0:
            raise RunNotFound(f"no run {run_id} in {self.path}")

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete runs and all their data; returns how many runs were deleted."""
        with self._db:
            deleted = 0
            for run_id in run_ids:
                for table in ("latency", "counters", "gauges", "events", "server_metrics"):
                    self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                deleted += self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
        return deleted

    def vacuum(self) -> None:
        """Give the space of deleted runs back to the file system."""
        self._db.execute("VACUUM")

    # --- reading: runs --------------------------------------------------------------------------------------

    def list_runs(self) -> list[RunRecord]:
        """All runs, newest first."""
        rows = self._db.execute(
            "SELECT id, name, started_at, ended_at, heartbeat_at, status, target, options, versions,"
            " machine, git_commit, summary FROM runs ORDER BY started_at DESC, id DESC"
        ).fetchall()
        return [self._record(row) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """One run.

        Raises:
            RunNotFound: if there is no such run.
        """
        row = self._db.execute(
            "SELECT id, name, started_at, ended_at, heartbeat_at, status, target, options, versions,"
            " machine, git_commit, summary FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id} in {self.path}")
        return self._record(row)

    def latest_run_id(self) -> int | None:
        """The newest run's id, or ``None`` for an empty store."""
        row = self._db.execute("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1").fetchone()
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
        )

    # --- reading: series ------------------------------------------------------------------------------------

    def _frame(self, sql: str, params: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
        rows = self._db.execute(sql, params).fetchall()
        return pd.DataFrame.from_records(rows, columns=list(columns))

    def time_range(self, run_id: int) -> tuple[int, int] | None:
        """First and last second holding any sample (latency, counter or gauge), or ``None``."""
        row = self._db.execute(
            "SELECT MIN(lo), MAX(hi) FROM ("
            " SELECT MIN(t) AS lo, MAX(t) AS hi FROM latency WHERE run_id = ? AND resolution = 1"
            " UNION ALL SELECT MIN(t), MAX(t) FROM counters WHERE run_id = ?"
            " UNION ALL SELECT MIN(t), MAX(t) FROM gauges WHERE run_id = ?)",
            (run_id, run_id, run_id),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def latency_metrics(self, run_id: int) -> list[str]:
        """Names of the latency metrics the run has, sorted."""
        rows = self._db.execute(
            "SELECT DISTINCT metric FROM latency WHERE run_id = ? AND resolution = ? ORDER BY metric",
            (run_id, ROLLUP_SECONDS),
        ).fetchall()
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
            resolution: 1 for per-second rows, :data:`ROLLUP_SECONDS` for per-minute roll-ups.
            with_hist: include the encoded histogram of each row (to merge ranges exactly).
        """
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

    def merged_histogram(
        self, run_id: int, metric: str, start: float | None = None, end: float | None = None
    ) -> HdrHistogram:
        """Merge ``metric``'s histograms over ``start <= t < end`` exactly (empty histogram if none).

        Whole minutes inside the range come from the per-minute roll-ups; the ragged edges from seconds.
        """
        lo = -math.inf if start is None else math.ceil(start)
        hi = math.inf if end is None else math.ceil(end)
        first_minute = lo if math.isinf(lo) else -(-int(lo) // ROLLUP_SECONDS) * ROLLUP_SECONDS
        last_minute = hi if math.isinf(hi) else int(hi) // ROLLUP_SECONDS * ROLLUP_SECONDS
        blobs: list[bytes] = []
        if first_minute < last_minute:
            blobs += self._blobs(run_id, metric, ROLLUP_SECONDS, first_minute, last_minute)
            blobs += self._blobs(run_id, metric, 1, lo, first_minute)
            blobs += self._blobs(run_id, metric, 1, last_minute, hi)
        else:
            blobs += self._blobs(run_id, metric, 1, lo, hi)
        return hdr.merge_encoded(blobs)

    def _blobs(self, run_id: int, metric: str, resolution: int, lo: float, hi: float) -> list[bytes]:
        if lo >= hi:
            return []
        clause, params = _range_clause(None if math.isinf(lo) else lo, None if math.isinf(hi) else hi)
        rows = self._db.execute(
            "SELECT hist FROM latency WHERE run_id = ? AND metric = ? AND resolution = ?" + clause,
            [run_id, metric, resolution, *params],
        ).fetchall()
        return [r[0] for r in rows]

    def counters(
        self,
        run_id: int,
        prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Counter rows ``name, t, value``, optionally only names starting with ``prefix``."""
        clause, params = _range_clause(start, end)
        if prefix:
            clause += " AND substr(name, 1, ?) = ?"
            params += [len(prefix), prefix]
        return self._frame(
            f"SELECT name, t, value FROM counters WHERE run_id = ?{clause} ORDER BY name, t",
            [run_id, *params],
            ["name", "t", "value"],
        )

    def gauges(
        self,
        run_id: int,
        names: Sequence[str] | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Gauge rows ``name, t, sum, count, min, max, mean``."""
        clause, params = _range_clause(start, end)
        if names is not None:
            if not names:
                return pd.DataFrame(columns=["name", "t", "sum", "count", "min", "max", "mean"])
            extra, extra_params = _in_clause("name", names)
            clause += extra
            params += extra_params
        frame = self._frame(
            f"SELECT name, t, sum, count, min, max FROM gauges WHERE run_id = ?{clause} ORDER BY name, t",
            [run_id, *params],
            ["name", "t", "sum", "count", "min", "max"],
        )
        count = frame["count"].to_numpy(dtype=np.float64)
        frame["mean"] = np.divide(
            frame["sum"].to_numpy(dtype=np.float64),
            count,
            out=np.zeros_like(count),
            where=count > 0,
        )
        return frame

    def counters_bucketed(
        self,
        run_id: int,
        width: int,
        prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Counter sums per bucket of ``width`` seconds: rows ``name, t, value`` (``t`` = bucket start).

        The same numbers as summing :meth:`counters` per bucket, aggregated in SQLite (a day of one-second
        rows reads in tens of milliseconds instead of hundreds). Buckets start at whole multiples of
        ``width``; empty buckets have no row.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        clause, params = _range_clause(start, end)
        if prefix:
            clause += " AND substr(name, 1, ?) = ?"
            params += [len(prefix), prefix]
        return self._frame(
            f"SELECT name, (t / ?) * ? AS b, SUM(value) FROM counters WHERE run_id = ?{clause}"
            " GROUP BY name, b ORDER BY name, b",
            [int(width), int(width), run_id, *params],
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
        mean per-second total (e.g. users connected). Aggregated in SQLite; buckets start at whole multiples
        of ``width``.
        """
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        columns = ["name", "t", "sum", "count", "min", "max", "seconds"]
        clause, params = _range_clause(start, end)
        if names is not None:
            if not names:
                return pd.DataFrame(columns=[*columns, "mean"])
            extra, extra_params = _in_clause("name", names)
            clause += extra
            params += extra_params
        frame = self._frame(
            f"SELECT name, (t / ?) * ? AS b, SUM(sum), SUM(count), MIN(min), MAX(max), COUNT(*)"
            f" FROM gauges WHERE run_id = ?{clause} GROUP BY name, b ORDER BY name, b",
            [int(width), int(width), run_id, *params],
            columns,
        )
        count = frame["count"].to_numpy(dtype=np.float64)
        frame["mean"] = np.divide(
            frame["sum"].to_numpy(dtype=np.float64),
            count,
            out=np.zeros_like(count),
            where=count > 0,
        )
        return frame

    def events_bucketed(
        self, run_id: int, width: int, start: float | None = None, end: float | None = None
    ) -> pd.DataFrame:
        """Connection events counted per kind and bucket of ``width`` seconds: rows ``kind, t, count``."""
        if width < 1:
            raise ValueError("width must be a positive number of seconds")
        clause, params = _range_clause(start, end, column="ts")
        return self._frame(
            f"SELECT kind, CAST(ts / ? AS INTEGER) * ? AS b, COUNT(*) FROM events WHERE run_id = ?{clause}"
            " GROUP BY kind, b ORDER BY kind, b",
            [int(width), int(width), run_id, *params],
            ["kind", "t", "count"],
        )

    def events(self, run_id: int, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        """Connection events ``ts, user, kind, detail``, in time order."""
        clause, params = _range_clause(start, end, column="ts")
        return self._frame(
            f"SELECT ts, user, kind, detail FROM events WHERE run_id = ?{clause} ORDER BY ts",
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
        rows = self._db.execute(
            "SELECT DISTINCT name FROM server_metrics WHERE run_id = ? ORDER BY name", (run_id,)
        ).fetchall()
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
        # With a single MAX() aggregate, SQLite takes the bare column (value) from the row holding MAX(t).
        last = self._frame(
            f"SELECT name, (t / ?) * ? AS b, MAX(t), value FROM server_metrics WHERE run_id = ?{clause}"
            " GROUP BY name, b ORDER BY name, b",
            args,
            columns[:4],
        )
        stats = self._frame(
            f"SELECT MIN(value), MAX(value), AVG(value) FROM server_metrics WHERE run_id = ?{clause}"
            " GROUP BY name, (t / ?) * ? ORDER BY name, (t / ?) * ?",
            [run_id, *params, *args[:2], *args[:2]],
            columns[4:],
        )
        return pd.concat([last, stats], axis=1)
