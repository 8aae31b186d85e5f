"""What the monitor reads from the run store, shaped for charts: runs, time series, range statistics.

Every read goes through :class:`runstore.store.RunStore` (read-only) and returns plain dataclasses or pandas
frames; nothing here knows about Dash or Plotly. Time series come back *already downsampled* for the time
window asked for (:func:`plan_window`): never more than :data:`MAX_BUCKETS` buckets, at most two points per
bucket, so a 24-hour run sends the browser the same few thousand points as a 10-minute one. Zooming in asks
again for the narrower window, at a finer resolution.

Latency over time comes from the per-second rows for short windows and from the store's exact per-minute
roll-ups for long ones; the distribution of a range (:func:`range_stats`) always merges the stored
histograms, never averages percentiles.

Time series frames are *long*: one row per point, columns :data:`SERIES_COLUMNS`:

========== ====================================================================================
family     ``latency``, ``throughput``, ``errors``, ``queue``, ``connections``, ``events``,
           ``server`` (rates, percentiles), ``server_gauge``, ``send_lag``, ``generator`` (the load
           generator's health), ``generator_bound`` (one point per generator-bound bucket: shading)
name       metric, message type, ``type.code``, state, event kind or server series
stat       ``p50`` / ``p95`` / ``p99`` / ``max`` (latency), ``sent`` / ``recv``, ``rate``, ``mean``, ...
t          unix seconds (the middle of the bucket), shifted for a compared run
value      milliseconds, per second, users, events ... (NaN breaks a line: missing data)
========== ====================================================================================
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from charts import server as server_samples
from charts.health import GeneratorHealth, generator_health
from charts.load import LoadDescription, describe_load
from charts.spectrum import spectrum_of
from monitor.downsample import choose_bucket, insert_gaps, minmax
from runstore import histogram as hdr
from runstore.errors import first_line
from runstore.location import redacted
from runstore.names import (
    CONNECTION_STATES,
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    GAUGE_QUEUE_SIZE,
    GENERATOR_GAUGES,
    METRIC_ACK_PREFIX,
    METRIC_SEND_LAG,
    request_type,
    state_gauge,
)
from runstore.store import RunRecord, RunStore, StoreCorrupt, StoreError

__all__ = [
    "FINE_MAX_BUCKET",
    "MAX_BUCKETS",
    "RUN_FACETS",
    "SERIES_COLUMNS",
    "TABLE_PERCENTILES",
    "TIMELINE_PERCENTILES",
    "RangeStats",
    "RunOverview",
    "RunRow",
    "Window",
    "describe_error",
    "facet_options",
    "filter_runs",
    "format_ms",
    "list_runs",
    "open_store",
    "overview",
    "overview_of",
    "plan_window",
    "range_stats",
    "read_timeline",
    "run_facet",
    "server_families",
]

Metric = str
"""A latency metric name from :mod:`runstore.names` (``ack:chat_message``, ``pong`` ...)."""

MAX_BUCKETS: Final = 600
"""Buckets per window; min/max downsampling keeps at most two points per bucket (1,200 per trace: about one
per horizontal pixel of the timeline)."""
FINE_MAX_BUCKET: Final = 10
"""Buckets up to this width (seconds) read per-second latency rows; wider ones the per-minute roll-ups."""
_ROLLUP: Final = 60

TIMELINE_PERCENTILES: Final[dict[str, str]] = {
    "p50": "p50_us",
    "p90": "p90_us",
    "p95": "p95_us",
    "p99": "p99_us",
    "p99.9": "p999_us",
    "max": "max_us",
}
"""Latency statistics the timeline can draw, and the store column each comes from."""
TABLE_PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)
SERIES_COLUMNS: Final = ("family", "name", "stat", "t", "value")
_EMPTY_SERIES = pd.DataFrame(
    {c: pd.Series(dtype=object if c in ("family", "name", "stat") else np.float64) for c in SERIES_COLUMNS}
)


# --- opening ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_store(path: str | Path) -> Iterator[RunStore]:
    """Open the run store read-only for one request; a database error while reading becomes a
    :class:`StoreError` with a one-line message for the page (damage in an SQLite file, a PostgreSQL server
    that stopped answering or a database whose tables are not a run store's).

    Raises:
        StoreError: no store, not a run store, a newer schema, damaged data, an unreachable database.
    """
    store = RunStore.open(path, readonly=True)
    try:
        yield store
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(f"{path} is damaged: {exc}") from exc
    except ValueError as exc:
        if "HdrHistogram" in str(exc) or "histogram" in str(exc):
            raise StoreCorrupt(f"{path} holds a damaged latency histogram: {exc}") from exc
        raise
    except Exception as exc:
        problem = _postgres_problem(store, exc)
        if problem is None:
            raise
        raise problem from exc
    finally:
        store.close()


def _postgres_problem(store: RunStore, exc: Exception) -> StoreError | None:
    """What a psycopg error raised while reading a PostgreSQL store means, or ``None`` (not one).

    psycopg is imported only by a PostgreSQL store (:meth:`RunStore.open`), so an SQLite monitor never
    loads it here either.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    where = redacted(store.location)
    detail = first_line(exc)
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return StoreCorrupt(
            f"{where} is not a wsgauge run store this wsgauge can read (its tables differ: {detail}); "
            "point --results at the database a load test writes"
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreError(f"the run store {where} stopped answering: {detail}")
    return StoreError(f"cannot read the run store {where}: {detail}")


# --- runs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """One line of the runs list."""

    id: int
    name: str
    target: str
    status: str
    live: bool
    stale: bool
    started_at: float
    duration_s: float
    users: int | None
    headline: str
    """Verdict-relevant numbers from the run's stored summary (``p99 pong 1.2 ms · 0.01 % errors``)."""
    load: LoadDescription = field(default_factory=lambda: describe_load(None, None))
    """How the load was set: a shape's class, stages and observed peak, or ``-u`` / ``-r``."""
    kind: str = "load"
    """``load`` (a load test) or ``probe`` (an open-ended production probe, shown in the Live view)."""
    host: str | None = None
    """The machine that wrote the run (schema v2 ``runs.host``)."""
    tag: str | None = None
    """The user's label for the run (``--tag``: ``nightly``, ``release-2.4``)."""
    build: str | None = None
    """The build of the target under test (``--build``: a version or CI build id)."""


RUN_FACETS: Final = ("host", "tag", "build")
"""The run attributes the runs list shows and filters by (issue 12: runs from several machines and CI)."""


def run_facet(run: Any, name: str) -> str | None:
    """``run.host`` / ``.tag`` / ``.build`` of a :class:`RunRecord`, ``None`` when unset or on a schema-v1
    store (whose records have no such fields)."""
    value = getattr(run, name, None)
    return str(value) if value not in (None, "") else None


def facet_options(rows: Sequence[RunRow]) -> dict[str, list[str]]:
    """Per facet, the distinct values among ``rows``, sorted (the runs-list filters' choices)."""
    return {f: sorted({v for r in rows if (v := getattr(r, f)) is not None}) for f in RUN_FACETS}


def filter_runs(rows: Sequence[RunRow], chosen: Mapping[str, str | None]) -> list[RunRow]:
    """The rows whose host, tag and build equal every chosen value (``None``/empty: any)."""
    wanted = {f: v for f, v in chosen.items() if f in RUN_FACETS and v}
    return [r for r in rows if all(getattr(r, f) == v for f, v in wanted.items())]


def _users(options: dict[str, Any]) -> int | None:
    for key in ("users", "num_users"):
        value = options.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _headline(summary: dict[str, Any] | None) -> str:
    if not summary:
        return ""
    parts: list[str] = []
    latency = summary.get("latency") or {}
    if isinstance(latency, dict) and latency:
        preferred = [m for m in latency if m.startswith(METRIC_ACK_PREFIX)] or sorted(latency)
        metric = preferred[0]
        p99 = (latency.get(metric) or {}).get("p99_us")
        if isinstance(p99, int | float):
            parts.append(f"p99 {metric} {format_ms(p99 / 1000)}")
    sent = summary.get("sent")
    errors = summary.get("errors")
    if isinstance(sent, int | float) and sent > 0:
        values = errors.values() if isinstance(errors, dict) else ()
        n_errors = sum(v for v in values if isinstance(v, int | float))
        parts.append(f"{_si(sent)} sent")
        parts.append(f"{100.0 * n_errors / sent:.2g} % errors")
    return " · ".join(parts)


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}"
    return f"{value:.0f}"


def format_ms(ms: float) -> str:
    """A latency for people: ``0.412 ms``, ``12.3 ms``, ``1.25 s``."""
    if not math.isfinite(ms):
        return "—"
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.3g} ms"


def list_runs(store: RunStore, now: float | None = None) -> list[RunRow]:
    """All runs for the runs list, newest first (no per-run series queries: cheap for hundreds of runs)."""
    now = time.time() if now is None else now
    rows = []
    for run in store.list_runs():
        live = run.is_live(now)
        end = run.ended_at if run.ended_at is not None else (now if live else run.heartbeat_at)
        rows.append(
            RunRow(
                id=run.id,
                name=run.name,
                target=run.target,
                status=run.status,
                live=live,
                stale=run.is_stale(now),
                started_at=run.started_at,
                duration_s=max(0.0, end - run.started_at),
                users=_users(run.options),
                headline=_headline(run.summary),
                load=describe_load(run.options, run.summary),
                kind=str(getattr(run, "kind", None) or "load"),
                host=run_facet(run, "host"),
                tag=run_facet(run, "tag"),
                build=run_facet(run, "build"),
            )
        )
    return rows


# --- one run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOverview:
    """What the page needs to know about a run before drawing it."""

    run: RunRecord
    span: tuple[int, int] | None
    """First and last second with samples; ``None``: no samples yet."""
    metrics: tuple[Metric, ...]
    server_families: tuple[str, ...]
    live: bool
    server_names: tuple[str, ...] = ()
    """Every scraped server sample name (``wsgauge_frames_in_total{type="ping"}``)."""

    @property
    def has_send_lag(self) -> bool:
        return METRIC_SEND_LAG in self.metrics


def overview(store: RunStore, run_id: int, now: float | None = None) -> RunOverview:
    """Read a run's record, sample span, latency metrics and server metric families.

    Raises:
        RunNotFound: no such run.
    """
    return overview_of(store, store.get_run(run_id), now)


def overview_of(store: RunStore, run: RunRecord, now: float | None = None) -> RunOverview:
    """:func:`overview` of a run whose record is already read."""
    span = store.time_range(run.id)
    metrics = tuple(store.latency_metrics(run.id))
    names = tuple(store.server_metric_names(run.id))
    return RunOverview(run, span, metrics, tuple(server_families(names)), run.is_live(now), names)


def server_families(names: Sequence[str]) -> list[str]:
    """Group scraped Prometheus sample names into chartable families (``wsgauge_frames_in_total``).

    A counter (``*_total``) is one family drawn as a rate, a histogram (``*_bucket``, ``*_sum``,
    ``*_count``) one family drawn as p50 / p99, a gauge one family (:func:`charts.server.families`).
    """
    return sorted(server_samples.families(names))


# --- windows ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A time window of a run and the resolution to read it at.

    ``start``/``end`` (unix seconds, end exclusive) are whole multiples of ``bucket``. Latency rows are read
    at ``resolution`` (1: per second; 60: per-minute roll-ups) and grouped in ``latency_bucket``-wide buckets.
    """

    start: int
    end: int
    bucket: int
    resolution: int

    @property
    def latency_bucket(self) -> int:
        return max(self.bucket, self.resolution)

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "bucket": self.bucket, "resolution": self.resolution}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(int(data["start"]), int(data["end"]), int(data["bucket"]), int(data["resolution"]))


def plan_window(start: float, end: float, max_buckets: int = MAX_BUCKETS) -> Window:
    """Choose the bucket width and latency resolution that cut ``[start, end)`` into ``max_buckets`` at most.

    Buckets up to :data:`FINE_MAX_BUCKET` seconds read per-second latency rows (min/max per bucket); wider
    ones read the per-minute roll-ups, which are exact per minute and 60 times fewer.
    """
    span = max(float(end) - float(start), 1.0)
    bucket = choose_bucket(span, max_buckets)
    resolution = 1 if bucket <= FINE_MAX_BUCKET else _ROLLUP
    lo = math.floor(start / bucket) * bucket
    hi = max(math.ceil(end / bucket) * bucket, lo + bucket)
    return Window(int(lo), int(hi), bucket, resolution)


# --- time series --------------------------------------------------------------------------------------------


def _frame(family: str, name: str, stat: str, t: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"family": family, "name": name, "stat": stat, "t": t, "value": value})


def read_timeline(
    store: RunStore,
    run_id: int,
    window: Window,
    *,
    span: tuple[int, int],
    metrics: Sequence[Metric],
    percentiles: Sequence[str] = ("p50", "p99"),
    server: Sequence[str] = (),
    server_names: Sequence[str] = (),
    shift: float = 0.0,
    since: float | None = None,
    until: float | None = None,
) -> pd.DataFrame:
    """Read the timeline's time series for ``window``, downsampled, as a long :data:`SERIES_COLUMNS` frame.

    Args:
        span: the run's first and last second with samples (:func:`overview`); rates are divided by the
            seconds of each bucket that lie inside it, so partial edge buckets are not under-counted.
        metrics: latency metrics to draw (``send_lag`` goes to its own family).
        percentiles: keys of :data:`TIMELINE_PERCENTILES` to draw per metric.
        server: server metric families to draw (:func:`server_families`).
        server_names: all scraped sample names of the run (to find each family's series).
        shift: seconds added to every ``t`` (a compared run is aligned to the primary run's start: the
            window, in the primary run's time, is read at ``window - shift``).
        since, until: read ``[since, until)`` instead of the window's bounds, rounded down to whole buckets
            (live runs: ``until`` is the newest second, which may still be incomplete; the next read passes
            the same value as ``since`` and gets exactly the points that were not sent yet).

    Returns:
        Points grouped by family, name and stat, ascending in ``t``.
    """
    lo = (window.start if since is None else since) - shift
    hi = (window.end if until is None else until) - shift
    frames: list[pd.DataFrame] = []
    width = window.bucket
    c_lo = math.floor(lo / width) * width
    c_hi = math.floor(hi / width) * width if until is not None else hi
    if hi > lo:
        res = window.resolution
        l_lo = math.floor(lo / res) * res
        l_hi = math.floor(hi / res) * res if until is not None else hi
        if l_hi > l_lo:
            frames += _latency_series(store, run_id, window, l_lo, l_hi, metrics, percentiles)
    if c_hi > c_lo:
        # The gauge scan is the longest read (four gauges a second): run it on a second read-only
        # connection while this one reads the rest (SQLite releases the GIL while it scans).
        with ThreadPoolExecutor(max_workers=1) as pool:
            gauges = (
                pool.submit(_gauge_series_apart, store.path, run_id, width, c_lo, c_hi)
                if store.readonly
                else None
            )
            frames += _counter_series(store, run_id, width, c_lo, c_hi, span)
            frames += _event_series(store, run_id, width, c_lo, c_hi)
            if server:
                frames += _server_series(store, run_id, width, c_lo, c_hi, server, server_names)
            frames += (
                gauges.result() if gauges is not None else _gauge_series(store, run_id, width, c_lo, c_hi)
            )
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _EMPTY_SERIES.copy()
    series = pd.concat(frames, ignore_index=True)
    series["t"] = series["t"].astype(np.float64) + shift
    return series


def _latency_series(
    store: RunStore,
    run_id: int,
    window: Window,
    lo: float,
    hi: float,
    metrics: Sequence[Metric],
    percentiles: Sequence[str],
) -> list[pd.DataFrame]:
    if not metrics or not percentiles:
        return []
    res = window.resolution
    bucket = window.latency_bucket
    rows = store.latency(run_id, list(metrics), lo, hi, resolution=res)
    out: list[pd.DataFrame] = []
    for metric, group in rows.groupby("metric", sort=True):
        family = "send_lag" if metric == METRIC_SEND_LAG else "latency"
        t = group["t"].to_numpy(dtype=np.float64) + res / 2
        for stat in percentiles:
            y = group[TIMELINE_PERCENTILES[stat]].to_numpy(dtype=np.float64) / 1000.0
            x, y = minmax(t, y, bucket) if bucket > res else (t, y)
            x, y = insert_gaps(x, y, max_step=3 * bucket)
            out.append(_frame(family, str(metric), stat, x, y))
    return out


def _bucket_seconds(t: np.ndarray, width: int, span: tuple[int, int]) -> np.ndarray:
    """Seconds of each bucket ``[t, t + width)`` that lie inside the run's span (at least 1)."""
    first, last = span
    covered = np.minimum(t + width, last + 1) - np.maximum(t, first)
    return np.clip(covered, 1, width).astype(np.float64)


def _dense(t: np.ndarray, v: np.ndarray, grid: np.ndarray) -> np.ndarray:
    out = np.zeros(grid.size, dtype=np.float64)
    if grid.size == 0:
        return out
    idx = np.searchsorted(grid, t)
    ok = (idx < grid.size) & (grid[np.minimum(idx, grid.size - 1)] == t)
    out[idx[ok]] = v[ok]
    return out


def _counter_series(
    store: RunStore, run_id: int, width: int, lo: int, hi: float, span: tuple[int, int]
) -> list[pd.DataFrame]:
    rows = store.counters_bucketed(run_id, width, start=lo, end=hi)
    if rows.empty:
        return []
    first = max(lo, span[0] // width * width)
    last = min(hi, span[1] + 1)
    grid = np.arange(first, last, width, dtype=np.int64)
    seconds = _bucket_seconds(grid, width, span)
    out: list[pd.DataFrame] = []
    for name, group in rows.groupby("name", sort=True):
        name = str(name)
        t = group["t"].to_numpy(dtype=np.int64)
        v = group["value"].to_numpy(dtype=np.float64)
        if name.startswith((COUNTER_SENT, COUNTER_RECEIVED)):
            stat = "sent" if name.startswith(COUNTER_SENT) else "recv"
            rate = _dense(t, v, grid) / seconds  # nothing sent in a bucket is a rate of 0, not a gap
            out.append(_frame("throughput", name.split(".", 1)[1], stat, grid + width / 2, rate))
        elif name.startswith(COUNTER_ERRORS):
            rate = v / _bucket_seconds(t, width, span)
            out.append(_frame("errors", name[len(COUNTER_ERRORS) :], "rate", t + width / 2, rate))
    return out


GENERATOR_SERIES: Final = {
    GAUGE_GENERATOR_LOOP_LAG: ("loop lag ms", 1.0),
    GAUGE_GENERATOR_GC_MAX_PAUSE: ("GC pause ms", 1.0),
    GAUGE_GENERATOR_CPU: ("CPU %", 100.0),
}
"""The ``generator`` family's series: gauge -> (series name, factor). Each is the worst process's ``max``
in the bucket (a stall is what matters, not the average second); the longest single collection, not the
total, is charted because that is what a reply waiting behind it felt."""


def _generator_series(rows: pd.DataFrame, width: int) -> list[pd.DataFrame]:
    """The ``generator`` family (worst process per bucket) and ``generator_bound``: one point, value 1, per
    bucket in which any second was generator-bound (:func:`runstore.health.generator_bound`)."""
    out: list[pd.DataFrame] = []
    for name, (label, factor) in GENERATOR_SERIES.items():
        group = rows[rows["name"] == name]
        if len(group):
            t = group["t"].to_numpy(dtype=np.float64) + width / 2
            out.append(_frame("generator", label, "max", t, group["max"].to_numpy(dtype=np.float64) * factor))
    health = generator_health(rows, width)
    if health is not None and health.bound_t:
        t = np.asarray(health.bound_t, dtype=np.float64) + width / 2
        out.append(_frame("generator_bound", "bound", "flag", t, np.ones(len(t))))
    return out


def range_health(
    store: RunStore, run_id: int, start: float | None, end: float | None, width: int = 1
) -> GeneratorHealth | None:
    """The load generator's health over ``[start, end)`` (``None``: the run's first / last second), judged
    per bucket of ``width`` seconds (a bucket is bound when any of its seconds was; buckets keep a long
    range's read bounded); ``None`` when the run has no health gauges there (recorded before they existed).
    """
    lo = None if start is None else math.floor(start)
    hi = None if end is None else math.ceil(end)
    names = list(GENERATOR_GAUGES)
    ends_run = end is None  # a range that stops before the run's end judges its last second too
    if width <= 1:
        return generator_health(store.gauges(run_id, names, lo, hi), ends_run=ends_run)
    return generator_health(store.gauges_bucketed(run_id, width, names, lo, hi), width, ends_run=ends_run)


def _gauge_series(store: RunStore, run_id: int, width: int, lo: int, hi: float) -> list[pd.DataFrame]:
    names = [GAUGE_QUEUE_SIZE, *(state_gauge(s) for s in CONNECTION_STATES), *GENERATOR_GAUGES]
    rows = store.gauges_bucketed(run_id, width, names, start=lo, end=hi)
    out: list[pd.DataFrame] = _generator_series(rows[rows["name"].isin(GENERATOR_GAUGES)], width)
    for name, group in rows.groupby("name", sort=True):
        t = group["t"].to_numpy(dtype=np.float64) + width / 2
        if name in GENERATOR_GAUGES:
            continue
        if name == GAUGE_QUEUE_SIZE:
            out.append(_frame("queue", "queue", "mean", t, group["mean"].to_numpy(dtype=np.float64)))
            out.append(_frame("queue", "queue", "max", t, group["max"].to_numpy(dtype=np.float64)))
        else:
            users = group["sum"].to_numpy(dtype=np.float64) / group["seconds"].to_numpy(dtype=np.float64)
            out.append(_frame("connections", str(name).split(".", 1)[1], "users", t, users))
    return out


def _gauge_series_apart(path: Path, run_id: int, width: int, lo: int, hi: float) -> list[pd.DataFrame]:
    with open_store(path) as store:
        return _gauge_series(store, run_id, width, lo, hi)


def _event_series(store: RunStore, run_id: int, width: int, lo: int, hi: float) -> list[pd.DataFrame]:
    rows = store.events_bucketed(run_id, width, start=lo, end=hi)
    return [
        _frame(
            "events",
            str(kind),
            "count",
            group["t"].to_numpy(dtype=np.float64) + width / 2,
            group["count"].to_numpy(dtype=np.float64),
        )
        for kind, group in rows.groupby("kind", sort=True)
    ]


def _server_series(
    store: RunStore,
    run_id: int,
    width: int,
    lo: int,
    hi: float,
    families: Sequence[str],
    names: Sequence[str],
) -> list[pd.DataFrame]:
    """Counters as rates, histograms as p50 / p99 from their buckets, gauges as is (:mod:`charts.server`).

    Gauges go to the ``server_gauge`` family (a row of their own: users and bytes do not share an axis
    with frames per second); ``name`` is the family, ``stat`` the series (``ping``, ``p99``).
    """
    chosen = set(families)
    wanted = [n for n in names if _server_family(n, chosen) is not None]
    if not wanted:
        return []
    # One bucket of look-behind, so that the first bucket of a counter has a previous value to differ from.
    rows = store.server_metrics_bucketed(run_id, width, sorted(wanted), start=lo - width, end=hi)
    derived = server_samples.derive(rows)
    out: list[pd.DataFrame] = []
    for (family, series, kind), group in derived.groupby(["family", "series", "kind"], sort=True):
        t = group["t"].to_numpy(dtype=np.float64) + width / 2
        keep = t >= lo
        x, y = insert_gaps(t[keep], group["value"].to_numpy(dtype=np.float64)[keep], max_step=3 * width)
        row = "server_gauge" if kind == "gauge" else "server"
        out.append(_frame(row, str(family), str(series) or str(kind), x, y))
    return out


def _server_family(name: str, chosen: set[str]) -> str | None:
    """The chosen family a scraped sample belongs to (``..._bucket{le="0.1"}`` -> its histogram), if any."""
    base = server_samples.split_name(name)[0]
    if base in chosen:
        return base
    for suffix in ("_bucket", "_count", "_sum"):
        if base.endswith(suffix) and base[: -len(suffix)] in chosen:
            return base[: -len(suffix)]
    return None


# --- range statistics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeStats:
    """The latency distribution of each metric over ``[start, end)``, from merged histograms."""

    start: float
    end: float
    table: pd.DataFrame
    """One row per metric: ``metric, count, rate, p50, p90, p99, p99.9, max, mean`` (ms), ``errors``,
    ``error_rate`` (errors / (successes + errors), NaN when the metric has no error counters)."""
    spectrum: pd.DataFrame = field(repr=False)
    """``metric, percentile, value`` (ms) on the :mod:`charts.spectrum` grid, as far as the count resolves."""


_TABLE_COLUMNS = [
    "metric", "count", "rate", "p50", "p90", "p99", "p99.9", "max", "mean", "errors", "error_rate",
]  # fmt: skip


def range_stats(
    store: RunStore,
    run_id: int,
    metrics: Sequence[Metric],
    start: float | None,
    end: float | None,
    span: tuple[int, int],
) -> RangeStats:
    """Merge each metric's histograms over ``[start, end)`` and read the table and the percentile spectrum.

    Args:
        start, end: the range (unix seconds); ``None`` for the run's first / last sample.
        span: the run's sample span, to know the range's length in seconds.
    """
    lo = span[0] if start is None else max(float(start), float(span[0]))
    hi = span[1] + 1 if end is None else min(float(end), float(span[1] + 1))
    seconds = max(hi - lo, 1.0)
    errors = store.counters(run_id, prefix=COUNTER_ERRORS, start=math.ceil(lo), end=math.ceil(hi))
    by_type: dict[str, int] = {}
    for name, value in errors.groupby("name")["value"].sum().items():
        message_type = str(name)[len(COUNTER_ERRORS) :].split(".", 1)[0]
        by_type[message_type] = by_type.get(message_type, 0) + int(value)
    table_rows: list[dict[str, Any]] = []
    spectra: list[pd.DataFrame] = []
    for metric in metrics:
        histogram = store.merged_histogram(run_id, metric, lo, hi)
        summary = hdr.summarize(histogram)
        count = int(summary["count"])
        pcts = hdr.percentiles(histogram, TABLE_PERCENTILES)
        kind = request_type(metric)
        n_errors = by_type.get(kind, 0) if kind is not None else 0
        attempts = count + n_errors
        table_rows.append(
            {
                "metric": metric,
                "count": count,
                "rate": count / seconds,
                "p50": pcts[50.0] / 1000,
                "p90": pcts[90.0] / 1000,
                "p99": pcts[99.0] / 1000,
                "p99.9": pcts[99.9] / 1000,
                "max": summary["max_us"] / 1000,
                "mean": summary["mean_us"] / 1000,
                "errors": n_errors if kind is not None else np.nan,
                "error_rate": (n_errors / attempts if attempts else 0.0) if kind is not None else np.nan,
            }
        )
        if count:
            points = spectrum_of(histogram)
            spectra.append(
                pd.DataFrame(
                    {"metric": metric, "percentile": points.percentile, "value": points.value_us / 1000}
                )
            )
    table = pd.DataFrame(table_rows, columns=_TABLE_COLUMNS)
    spectrum = (
        pd.concat(spectra, ignore_index=True)
        if spectra
        else pd.DataFrame({"metric": pd.Series(dtype=object), "percentile": [], "value": []})
    )
    return RangeStats(lo, hi, table, spectrum)


def describe_error(exc: BaseException) -> str:
    """A one-line message for the page; :class:`StoreError` messages are already written for people."""
    if isinstance(exc, StoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
