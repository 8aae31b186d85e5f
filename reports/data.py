"""A run, read once: the snapshot every report, figure and gate works from.

:class:`RunData` holds what one run recorded, as pandas frames: metadata, per-second latency rows (summary
columns *and* the encoded histogram of each second), counters, gauges, connection events and server metrics.
It comes either from the run store (:func:`load_run`) or from the data block embedded in a report
(:mod:`reports.embed`); both give the same numbers, so a gate reading two HTML files decides exactly as it
would reading the store.

Percentiles are never averaged: whole-run (or post-warm-up) figures are read off merged histograms
(:meth:`RunData.merged`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from charts.windows import window_starts
from reports.errors import ReportError
from runstore import histogram as hdr
from runstore.names import (
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    METRIC_CONNECT,
    request_type,
)
from runstore.schema import LATENCY_COLUMNS as SUMMARY_COLUMNS
from runstore.store import ROLLUP_SECONDS, RunStore, StoreError

__all__ = [
    "COUNTER_COLUMNS",
    "EVENT_COLUMNS",
    "GAUGE_COLUMNS",
    "LATENCY_COLUMNS",
    "MAX_PER_SECOND_S",
    "SERVER_COLUMNS",
    "SUMMARY_PERCENTILES",
    "Metric",
    "RequestType",
    "RunData",
    "error_rates",
    "latency_summary",
    "load_run",
    "request_type",
    "throughput",
]

Metric: TypeAlias = str
"""A latency metric name of the run store: ``ack:chat_message``, ``pong``, ``connect`` ..."""
RequestType: TypeAlias = str
"""A client frame type as counted by ``sent.<type>`` and ``errors.<type>.<code>``: ``chat_message``."""

LATENCY_COLUMNS = ("metric", "t", *SUMMARY_COLUMNS, "hist")
"""A latency row as a report holds it: the store's summary columns between its key and its histogram."""
COUNTER_COLUMNS = ("name", "t", "value")
GAUGE_COLUMNS = ("name", "t", "sum", "count", "min", "max", "mean")
EVENT_COLUMNS = ("ts", "user", "kind", "detail")
SERVER_COLUMNS = ("name", "t", "value")

MAX_PER_SECOND_S = 2 * 3600
"""Runs longer than this keep per-minute histograms (the store's roll-ups) instead of per-second ones."""

SUMMARY_PERCENTILES: Mapping[str, float] = {
    "p50": 50.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99.9": 99.9,
}
"""Percentiles every summary reports, by the name thresholds use."""


@dataclass(frozen=True)
class RunData:
    """What one run recorded, over seconds ``start <= t < end``.

    Frames are sorted by name then time and are never modified in place; :meth:`window` returns a new
    snapshot.
    """

    run: Mapping[str, Any]
    """Metadata: ``id, name, started_at, ended_at, status, target, options, versions, machine, git_commit,
    summary``."""
    start: int
    end: int
    resolution: int
    """Seconds per latency row: 1, or :data:`~runstore.store.ROLLUP_SECONDS` for very long runs."""
    latency: pd.DataFrame
    counters: pd.DataFrame
    gauges: pd.DataFrame
    events: pd.DataFrame
    server_metrics: pd.DataFrame
    excluded: frozenset[int] = frozenset()
    """Seconds dropped inside ``start <= t < end`` (:meth:`without_seconds`: the load generator stalled)."""
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    """Merged histograms and windows already computed: decoding every second's histogram is the slow part of
    a report, and every table and chart of it reads the same merges (never carried over by ``replace``)."""

    @property
    def duration_s(self) -> int:
        """Seconds covered by samples (excluded seconds do not count)."""
        return self.end - self.start - len(self.excluded)

    @property
    def seconds(self) -> np.ndarray:
        """The seconds of the snapshot, in order, without the excluded ones."""
        every = np.arange(self.start, self.end, dtype=np.int64)
        if not self.excluded:
            return every
        return every[~np.isin(every, np.fromiter(self.excluded, dtype=np.int64))]

    def without_seconds(self, seconds: set[int]) -> RunData:
        """Return the snapshot without the latency rows, counters and gauges of ``seconds``."""
        if not seconds:
            return self
        drop = list(seconds)

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[~frame["t"].isin(drop)].reset_index(drop=True)

        inside = {t for t in seconds if self.start <= t < self.end}
        return replace(
            self,
            latency=cut(self.latency),
            counters=cut(self.counters),
            gauges=cut(self.gauges),
            excluded=self.excluded | frozenset(inside),
        )

    @property
    def metrics(self) -> list[Metric]:
        """Latency metrics with at least one sample, sorted."""
        counts = self.latency.groupby("metric", sort=True)["count"].sum()
        return [str(m) for m in counts.index[counts.to_numpy() > 0]]

    @property
    def label(self) -> str:
        """``run 7 (name)``, for messages."""
        return f"run {self.run.get('id', '?')} ({self.run.get('name', '?')})"

    def window(self, warmup_s: float, cooldown_s: float = 0.0) -> RunData:
        """Return the snapshot without its first ``warmup_s`` and last ``cooldown_s`` seconds.

        Latency rows, counters and gauges are cut; events and server metrics are kept whole.

        Raises:
            ReportError: if no latency sample is left.
        """
        if warmup_s <= 0 and cooldown_s <= 0:
            return self
        lo = self.start + max(warmup_s, 0.0)
        hi = self.end - max(cooldown_s, 0.0)
        latency = self.latency[(self.latency["t"] >= lo) & (self.latency["t"] < hi)].reset_index(drop=True)
        if int(latency["count"].sum()) == 0:
            raise ReportError(
                f"{self.label} has no latency samples after the {warmup_s:g} s warm-up "
                f"(it lasted {self.duration_s} s); use a shorter --warmup"
            )
        start = math.ceil(lo)
        end = max(math.ceil(hi), start + 1)

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[(frame["t"] >= start) & (frame["t"] < end)].reset_index(drop=True)

        return replace(
            self,
            start=start,
            end=end,
            latency=latency,
            counters=cut(self.counters),
            gauges=cut(self.gauges),
        )

    def metric_rows(self, metric: Metric) -> pd.DataFrame:
        """The latency rows of one metric, in time order."""
        return self.latency[self.latency["metric"] == metric]

    def merged(self, metric: Metric) -> HdrHistogram:
        """Merge all of ``metric``'s histograms exactly (an empty histogram if it has none).

        Raises:
            ReportError: if a stored histogram cannot be decoded.
        """
        key = ("merged", metric)
        if key not in self._cache:
            try:
                self._cache[key] = hdr.merge_encoded(self.metric_rows(metric)["hist"].tolist())
            except ValueError as exc:
                raise ReportError(f"{self.label}: damaged histogram for {metric}: {exc}") from exc
        return self._cache[key]

    def latency_windows(self, metric: Metric, width: int) -> pd.DataFrame:
        """``metric`` per window of ``width`` seconds (whole multiples of ``width``), off merged histograms.

        Returns:
            ``t`` (window start), ``count``, ``p50_us``, ``p99_us``, ``max_us`` for every window with samples:
            each window's percentiles come from the exact merge of its histograms, never an average of
            per-second percentiles.

        Raises:
            ReportError: if a stored histogram cannot be decoded.
        """
        key = ("windows", metric, width)
        if key in self._cache:
            return self._cache[key]
        rows = self.metric_rows(metric)
        rows = rows[rows["count"] > 0]
        columns = ["t", "count", "p50_us", "p99_us", "max_us"]
        if width <= self.resolution:
            frame = rows.loc[:, columns].reset_index(drop=True)  # one row per window: the store's own figures
        else:
            out = [
                (start, summary["count"], summary["p50_us"], summary["p99_us"], summary["max_us"])
                for start, _, summary in self._merged_windows(metric, rows, width)
            ]
            frame = pd.DataFrame(out, columns=columns)
        self._cache[key] = frame
        return frame

    def _merged_windows(
        self, metric: str, rows: pd.DataFrame, width: int
    ) -> Iterator[tuple[int, HdrHistogram, dict[str, Any]]]:
        """Each window of ``width`` seconds over ``rows`` (one metric's rows with samples, in time order):
        its start, its histograms merged exactly, and the merge's summary.

        Raises:
            ReportError: if a stored histogram cannot be decoded.
        """
        starts = window_starts(rows["t"].to_numpy(), 0, width)
        blobs = rows["hist"].tolist()
        bounds = np.flatnonzero(np.diff(starts)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(blobs)], strict=True):
            try:
                merged = hdr.merge_encoded(blobs[lo:hi])
                summary = hdr.summarize(merged)
            except ValueError as exc:
                raise ReportError(f"{self.label}: damaged histogram for {metric}: {exc}") from exc
            yield int(starts[lo]), merged, summary

    def counter_windows(self, prefixes: Sequence[str], width: int) -> pd.DataFrame:
        """Counters whose names start with one of ``prefixes``, summed per window: ``name, t, value``."""
        rows = self.counters[self.counters["name"].astype(str).str.startswith(tuple(prefixes))]
        frame = pd.DataFrame(
            {
                "name": rows["name"].astype(str).to_numpy(),
                "t": window_starts(rows["t"].to_numpy(), 0, width),
                "value": rows["value"].to_numpy(dtype=np.float64),
            }
        )
        return frame.groupby(["name", "t"], sort=True, as_index=False)["value"].sum()

    def gauge_windows(self, name: str, width: int) -> pd.DataFrame:
        """One gauge per window: ``t, sum, count, min, max, seconds`` (sums and counts add exactly).

        ``sum / seconds`` is the mean per-second total (users in a state); ``sum / count`` the mean
        observation (queue per user).
        """
        rows = self.gauges[self.gauges["name"] == name]
        frame = pd.DataFrame(
            {
                "t": window_starts(rows["t"].to_numpy(), 0, width),
                "sum": rows["sum"].to_numpy(dtype=np.float64),
                "count": rows["count"].to_numpy(dtype=np.float64),
                "min": rows["min"].to_numpy(dtype=np.float64),
                "max": rows["max"].to_numpy(dtype=np.float64),
            }
        )
        out = frame.groupby("t", sort=True, as_index=False).agg(
            sum=("sum", "sum"), count=("count", "sum"), min=("min", "min"), max=("max", "max"),
            seconds=("sum", "size"),
        )  # fmt: skip
        out["seconds"] = out["seconds"] * self.resolution  # a coarsened row stands for its window's seconds
        return out

    def coarsened(self, width: int) -> RunData:
        """The snapshot with one row per window of ``width`` seconds, not one per second.

        Windows start at whole multiples of ``width`` (unix time), as the store's per-minute roll-ups do, so
        roll-ups nest in any window of whole minutes and a coarsened snapshot windows again exactly.

        Histograms merge exactly (each window's summary columns are recomputed from its merge), counters and
        gauge sums / counts add, gauge min / max stay extremes, server metrics keep each window's last
        scrape (counters are cumulative: rates over windows are unchanged). Events are kept whole. A report
        of a long run embeds this: its size then grows with the number of windows, not of seconds.

        Raises:
            ReportError: if a stored histogram cannot be decoded.
        """
        if width <= self.resolution:
            return self
        rows: list[dict[str, Any]] = []
        for metric in self.metrics:
            group = self.metric_rows(metric)
            group = group[group["count"] > 0]
            rows.extend(
                {
                    "metric": metric,
                    "t": start,
                    **{c: summary[c] for c in SUMMARY_COLUMNS},
                    "hist": hdr.encode(merged).decode("ascii"),
                }
                for start, merged, summary in self._merged_windows(metric, group, width)
            )
        latency = pd.DataFrame(rows, columns=list(LATENCY_COLUMNS))
        counters = self.counters.assign(t=window_starts(self.counters["t"].to_numpy(), 0, width))
        counters = counters.groupby(["name", "t"], sort=True, as_index=False)["value"].sum()
        gauges = self.gauges.assign(t=window_starts(self.gauges["t"].to_numpy(), 0, width))
        gauges = gauges.groupby(["name", "t"], sort=True, as_index=False).agg(
            sum=("sum", "sum"), count=("count", "sum"), min=("min", "min"), max=("max", "max")
        )
        count = gauges["count"].to_numpy(dtype=np.float64)
        gauges["mean"] = np.divide(
            gauges["sum"].to_numpy(dtype=np.float64), count, out=np.zeros_like(count), where=count > 0
        )
        server = self.server_metrics.assign(b=window_starts(self.server_metrics["t"].to_numpy(), 0, width))
        server = server.sort_values(["name", "t"], kind="stable").drop_duplicates(["name", "b"], keep="last")
        return replace(
            self,
            resolution=int(width),
            latency=latency,
            counters=_frame(counters, COUNTER_COLUMNS),
            gauges=_frame(gauges, GAUGE_COLUMNS),
            server_metrics=_frame(server, SERVER_COLUMNS),
        )

    def counter_total(self, name: str) -> int:
        """Sum of one counter over the snapshot."""
        return int(self.counters.loc[self.counters["name"] == name, "value"].sum())

    def counter_totals(self, prefix: str) -> pd.Series:
        """Totals of every counter whose name starts with ``prefix``, by name."""
        rows = self.counters[self.counters["name"].str.startswith(prefix)]
        return rows.groupby("name", sort=True)["value"].sum()


def latency_summary(data: RunData, metric: Metric) -> dict[str, Any]:
    """Count, rate, percentiles (µs) and max of ``metric`` over the snapshot, from its merged histogram."""
    histogram = data.merged(metric)
    summary = hdr.summarize(histogram)
    values = hdr.percentiles(histogram, list(SUMMARY_PERCENTILES.values()))
    result: dict[str, Any] = {
        "count": int(summary["count"]),
        "rate_per_s": summary["count"] / max(data.duration_s, 1),
        "min_us": int(summary["min_us"]),
        "mean_us": float(summary["mean_us"]),
        "max_us": int(summary["max_us"]),
    }
    for name, pct in SUMMARY_PERCENTILES.items():
        result[f"{name}_us"] = int(values[pct])
    return result


def error_rates(data: RunData) -> dict[RequestType, dict[str, float | int]]:
    """Errors per request type: ``{type: {"errors": n, "requests": m, "rate": n / m}}``.

    The denominator is ``sent.<type>``; for ``connect`` (which has no sent counter) it is the number of
    handshakes measured plus the failed ones. Types with errors but no known denominator get the errors as
    their denominator floor (rate 1.0 means every request we know of failed).
    """
    errors = data.counter_totals(COUNTER_ERRORS)
    per_type: dict[str, int] = {}
    for name, value in errors.items():
        kind = str(name)[len(COUNTER_ERRORS) :].rsplit(".", 1)[0]
        per_type[kind] = per_type.get(kind, 0) + int(value)
    sent = data.counter_totals(COUNTER_SENT)
    types = {str(n)[len(COUNTER_SENT) :] for n in sent.index} | set(per_type)
    if METRIC_CONNECT in data.metrics:
        types.add("connect")
    result: dict[RequestType, dict[str, float | int]] = {}
    for kind in sorted(types):
        n_errors = per_type.get(kind, 0)
        if kind == "connect" and f"{COUNTER_SENT}connect" not in sent.index:
            requests = int(data.metric_rows(METRIC_CONNECT)["count"].sum()) + n_errors
        else:
            requests = int(sent.get(f"{COUNTER_SENT}{kind}", 0))
        requests = max(requests, n_errors)
        result[kind] = {
            "errors": n_errors,
            "requests": requests,
            "rate": n_errors / requests if requests else 0.0,
        }
    return result


def throughput(data: RunData) -> dict[str, float]:
    """Mean frames per second of every ``sent.*`` and ``recv.*`` counter over the snapshot."""
    seconds = max(data.duration_s, 1)
    result: dict[str, float] = {}
    for prefix in (COUNTER_SENT, COUNTER_RECEIVED):
        for name, value in data.counter_totals(prefix).items():
            result[str(name)] = float(value) / seconds
    return result


def _frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame.loc[:, list(columns)].reset_index(drop=True)


def load_run(
    store_path: str | os.PathLike[str], run_id: int | None = None, *, resolution: int | None = None
) -> RunData:
    """Read a run from the store.

    Args:
        run_id: the run; ``None`` for the newest.
        resolution: seconds per latency row; by default 1, or per-minute for runs longer than
            :data:`MAX_PER_SECOND_S`.

    Raises:
        ReportError: no store, damaged store, no such run, or a run without samples.
    """
    try:
        with RunStore.open(store_path, readonly=True) as store:
            if run_id is None:
                run_id = store.latest_run_id()
                if run_id is None:
                    raise ReportError(f"the run store {store_path} has no runs")
            record = store.get_run(run_id)
            span = store.time_range(run_id)
            if span is None:
                raise ReportError(f"run {run_id} ({record.name}) has no samples")
            start, last = span
            if resolution is None:
                resolution = 1 if last - start < MAX_PER_SECOND_S else ROLLUP_SECONDS
            latency = store.latency(run_id, resolution=resolution, with_hist=True)
            counters = store.counters(run_id)
            gauges = store.gauges(run_id)
            events = store.events(run_id)
            server = store.server_metrics(run_id)
    except StoreError as exc:
        raise ReportError(str(exc)) from exc
    if latency.empty or int(latency["count"].sum()) == 0:
        raise ReportError(f"run {run_id} ({record.name}) has no latency samples")
    latency["hist"] = [h.decode("ascii") if isinstance(h, bytes) else str(h) for h in latency["hist"]]
    run = {
        "id": record.id,
        "name": record.name,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "status": record.status,
        "target": record.target,
        "options": record.options,
        "versions": record.versions,
        "machine": record.machine,
        "git_commit": record.git_commit,
        "summary": record.summary,
    }
    return RunData(
        run=run,
        start=int(start),
        end=int(last) + 1,
        resolution=int(resolution),
        latency=_frame(latency, LATENCY_COLUMNS),
        counters=_frame(counters, COUNTER_COLUMNS),
        gauges=_frame(gauges, GAUGE_COLUMNS),
        events=_frame(events, EVENT_COLUMNS),
        server_metrics=_frame(server, SERVER_COLUMNS),
    )
