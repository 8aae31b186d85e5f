"""The end-of-run summary: computed from the run store (merged histograms, never averaged percentiles).

:func:`summarize_run` returns a JSON-safe dict (stored as the run's ``summary``); :func:`format_summary`
renders it as the table printed on the console when the run ends.

One part comes from Locust's own statistics: the ``missed:*`` rows (pushes sent while their receiver was
away, delivered from the offline backlog when it came back). They are kept out of the latency histograms on
purpose (a backlog delay is not a delivery latency), but Locust's table shows them, and their waits push
its "Aggregated" max to seconds; :func:`missed_rows` lets the wsgauge table show the same rows, labelled,
so that the two tables agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from charts.health import generator_health
from runstore import histogram as hdr
from runstore.names import (
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    GENERATOR_GAUGES,
    METRIC_CONNECT,
    state_gauge,
)
from runstore.store import RunStore

__all__ = ["MISSED_PREFIX", "format_summary", "missed_rows", "never_connected", "summarize_run"]

MISSED_PREFIX = "missed:"
"""Locust request names of pushes delivered from the offline backlog (``missed:chat``)."""
MISSED_PERCENTILES = (0.5, 0.95, 0.99)


class LocustStatsEntry(Protocol):
    """The part of ``locust.stats.StatsEntry`` read here."""

    name: str
    num_requests: int
    max_response_time: float

    def get_response_time_percentile(self, percent: float) -> float: ...


def missed_rows(entries: Iterable[LocustStatsEntry]) -> dict[str, dict[str, float]]:
    """The ``missed:*`` rows of Locust's statistics: ``{name: {count, p50_ms, p95_ms, p99_ms, max_ms}}``.

    Percentiles as Locust computes them (its rounded response-time buckets), so they match its table.
    """
    rows: dict[str, dict[str, float]] = {}
    for entry in entries:
        if not entry.name.startswith(MISSED_PREFIX) or not entry.num_requests:
            continue
        p50, p95, p99 = (float(entry.get_response_time_percentile(p)) for p in MISSED_PERCENTILES)
        rows[entry.name] = {
            "count": int(entry.num_requests),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "max_ms": float(entry.max_response_time),
        }
    return dict(sorted(rows.items()))


def summarize_run(store: RunStore, run_id: int) -> dict[str, Any]:
    """Summarise a run from what the store holds.

    Returns:
        ``{"duration_s", "latency": {metric: {count, p50_us, p95_us, p99_us, max_us, mean_us}},
        "sent", "received", "errors": {counter: n}, "users": {"peak_connected", "final_connected",
        "peak_reconnecting"}, "server_metrics": n, "generator": {"judged_s", "bound_s", "reasons":
        {"GC": n, ...}, "sentence"}}`` (``generator`` is ``None`` without health gauges).
    """
    latency: dict[str, dict[str, Any]] = {}
    for metric in store.latency_metrics(run_id):
        summary = hdr.summarize(store.merged_histogram(run_id, metric))
        latency[metric] = {
            "count": int(summary["count"]),
            "p50_us": int(summary["p50_us"]),
            "p95_us": int(summary["p95_us"]),
            "p99_us": int(summary["p99_us"]),
            "max_us": int(summary["max_us"]),
            "mean_us": round(float(summary["mean_us"]), 1),
        }
    counters = store.counters(run_id)
    totals = counters.groupby("name")["value"].sum() if not counters.empty else None

    def total(prefix: str) -> dict[str, int]:
        if totals is None:
            return {}
        return {str(n): int(v) for n, v in totals.items() if str(n).startswith(prefix)}

    sent = total(COUNTER_SENT)
    received = total(COUNTER_RECEIVED)
    errors = total(COUNTER_ERRORS)
    gauges = store.gauges(run_id, [state_gauge("connected"), state_gauge("reconnecting")])
    users: dict[str, int] = {"peak_connected": 0, "final_connected": 0, "peak_reconnecting": 0}
    if not gauges.empty:
        connected = gauges[gauges["name"] == state_gauge("connected")].sort_values("t")
        reconnecting = gauges[gauges["name"] == state_gauge("reconnecting")]
        if not connected.empty:
            users["peak_connected"] = int(connected["sum"].max())
            users["final_connected"] = int(connected["sum"].iloc[-1])
        if not reconnecting.empty:
            users["peak_reconnecting"] = int(reconnecting["sum"].max())
    span = store.time_range(run_id)
    run = store.get_run(run_id)
    health = generator_health(store.gauges(run_id, list(GENERATOR_GAUGES)))
    return {
        "duration_s": round(run.duration_s, 3),
        "seconds_with_samples": 0 if span is None else span[1] - span[0] + 1,
        "latency": latency,
        "sent": sum(sent.values()),
        "received": sum(received.values()),
        "sent_by_type": {k[len(COUNTER_SENT) :]: v for k, v in sorted(sent.items())},
        "received_by_type": {k[len(COUNTER_RECEIVED) :]: v for k, v in sorted(received.items())},
        "errors": dict(sorted(errors.items())),
        "users": users,
        "events": len(store.events(run_id)),
        "server_metric_scrapes": int(store.server_metrics(run_id)["t"].nunique()),
        "generator": None
        if health is None
        else {
            "judged_s": health.judged,
            "bound_s": health.bound,
            "reasons": dict(health.reasons),
            "sentence": health.sentence,
        },
    }


def never_connected(summary: dict[str, Any]) -> str | None:
    """Why no user ever connected although users tried (``"150 connects failed: refused 150"``), or ``None``.

    Such a run measured nothing of the target: it is stored as failed, not completed. A run whose users
    never tried (a back end alone, or stopped before any spawned) is not judged here.
    """
    connects = summary.get("latency", {}).get(METRIC_CONNECT, {}).get("count", 0)
    prefix = f"{COUNTER_ERRORS}{METRIC_CONNECT}."
    failures = {k[len(prefix) :]: v for k, v in summary.get("errors", {}).items() if k.startswith(prefix)}
    if connects or not failures:
        return None
    reasons = ", ".join(f"{code} {count}" for code, count in sorted(failures.items()))
    return f"{sum(failures.values())} connects failed: {reasons}"


_COLUMNS = f"{'count':>10}{'p50':>11}{'p95':>11}{'p99':>11}{'max':>11}"


def _ms(us: int) -> str:
    return f"{us / 1000:.3f}"


def format_summary(
    summary: dict[str, Any], *, run_id: int, run_name: str, status: str, store_path: str
) -> str:
    """Render a summary as a fixed-width console table."""
    lines = [
        f"wsgauge run {run_id} '{run_name}': {status}, {summary.get('duration_s', 0):.1f} s",
        "",
        f"{'latency (ms)':<28}{_COLUMNS}",
    ]
    latency = summary.get("latency", {})
    if not latency:
        lines.append("  (no latency samples)")
    for metric, row in latency.items():
        lines.append(
            f"{metric:<28}{row['count']:>10}{_ms(row['p50_us']):>11}{_ms(row['p95_us']):>11}"
            f"{_ms(row['p99_us']):>11}{_ms(row['max_us']):>11}"
        )
    missed = summary.get("missed", {})
    if missed:
        lines.append("")
        lines.append(f"{'missed while away (ms)':<28}{_COLUMNS}")
        for name, row in missed.items():
            lines.append(
                f"{name:<28}{row['count']:>10}{row['p50_ms']:>11.0f}{row['p95_ms']:>11.0f}"
                f"{row['p99_ms']:>11.0f}{row['max_ms']:>11.0f}"
            )
        lines.append("  (pushes sent while the receiver was away, delivered when it came back: Locust's")
        lines.append("   missed:* rows, with its rounding; kept out of the latency rows above)")
    lines.append("")
    lines.append(f"messages sent {summary.get('sent', 0)}, received {summary.get('received', 0)}")
    errors = summary.get("errors", {})
    if errors:
        lines.append(f"errors ({sum(errors.values())}):")
        for name, count in errors.items():
            lines.append(f"  {name[len(COUNTER_ERRORS) :]:<40}{count:>10}")
    else:
        lines.append("errors: none")
    users = summary.get("users", {})
    line = f"users connected: peak {users.get('peak_connected', 0)}"
    if users.get("peak_reconnecting"):
        line += f"; peak reconnecting {users['peak_reconnecting']}"
    lines.append(line)
    generator = summary.get("generator") or {}
    if generator.get("bound_s"):
        lines.append(f"generator-bound: {generator['sentence']}")
    if summary.get("incomplete"):
        lines.append(f"incomplete run: {summary['incomplete']}")
    lines.append("")
    lines.append(f"stored: {store_path} (run id {run_id})")
    return "\n".join(lines)
