"""The end-of-run summary: computed from the run store (merged histograms, never averaged percentiles).

:func:`summarize_run` returns a JSON-safe dict (stored as the run's ``summary``); :func:`format_summary`
renders it as the table printed on the console when the run ends.
"""

from __future__ import annotations

from typing import Any

from runstore import histogram as hdr
from runstore.names import COUNTER_ERRORS, COUNTER_RECEIVED, COUNTER_SENT, state_gauge
from runstore.store import RunStore

__all__ = ["format_summary", "summarize_run"]


def summarize_run(store: RunStore, run_id: int) -> dict[str, Any]:
    """Summarise a run from what the store holds.

    Returns:
        ``{"duration_s", "latency": {metric: {count, p50_us, p95_us, p99_us, max_us, mean_us}},
        "sent", "received", "errors": {counter: n}, "users": {"peak_connected", "final_connected",
        "peak_reconnecting"}, "server_metrics": n}``.
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
    }


def _ms(us: int) -> str:
    return f"{us / 1000:.3f}"


def format_summary(
    summary: dict[str, Any], *, run_id: int, run_name: str, status: str, store_path: str
) -> str:
    """Render a summary as a fixed-width console table."""
    lines = [
        f"wsgauge run {run_id} '{run_name}': {status}, {summary.get('duration_s', 0):.1f} s",
        "",
        f"{'latency (ms)':<28}{'count':>10}{'p50':>11}{'p95':>11}{'p99':>11}{'max':>11}",
    ]
    latency = summary.get("latency", {})
    if not latency:
        lines.append("  (no latency samples)")
    for metric, row in latency.items():
        lines.append(
            f"{metric:<28}{row['count']:>10}{_ms(row['p50_us']):>11}{_ms(row['p95_us']):>11}"
            f"{_ms(row['p99_us']):>11}{_ms(row['max_us']):>11}"
        )
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
    lines.append("")
    lines.append(f"stored: {store_path} (run id {run_id})")
    return "\n".join(lines)
