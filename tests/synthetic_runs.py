"""Synthetic runs with known properties, written through the real run-store API.

For tests of the monitor and the reports where the shape of the data must be known exactly (a known latency
shift, a 24-hour run, an outage at a given second). Tests that need what a real load run produces use the
``real_run_store`` fixture instead. Everything is seeded: the same arguments give the same run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runstore.names import (
    CONNECTION_STATES,
    GAUGE_QUEUE_SIZE,
    METRIC_CONNECT,
    METRIC_DELIVERY_CHAT,
    METRIC_PONG,
    ack_metric,
    error_counter,
    received_counter,
    sent_counter,
    state_gauge,
)
from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore

__all__ = ["SyntheticRun", "set_connection_gauges", "write_drained", "write_synthetic_run"]

DEFAULT_METRICS: tuple[str, ...] = (ack_metric("chat_message"), METRIC_PONG, METRIC_DELIVERY_CHAT)


def set_connection_gauges(agg: SampleAggregator, state: str, queue_sizes: Sequence[float], at: float) -> None:
    """Every user in ``state`` (one observation per user of each state gauge), with these queue sizes."""
    users = len(queue_sizes)
    for name in CONNECTION_STATES:
        agg.set_gauge(state_gauge(name), [1.0 if name == state else 0.0] * users, at=at)
    agg.set_gauge(GAUGE_QUEUE_SIZE, [float(q) for q in queue_sizes], at=at)


def write_drained(store: RunStore, run_id: int, agg: SampleAggregator) -> None:
    """Write what ``agg`` holds (its samples, then its events) to run ``run_id``, as a recorder does."""
    samples, events = agg.drain()
    store.write_samples(run_id, samples)
    store.write_events(run_id, events)


@dataclass(frozen=True)
class SyntheticRun:
    run_id: int
    start: int
    seconds: int
    metrics: tuple[str, ...]


def write_synthetic_run(
    path: Path,
    *,
    name: str = "synthetic",
    start: int = 1_700_000_000,
    seconds: int = 60,
    users: int = 10,
    rate: int = 50,
    metrics: Sequence[str] = DEFAULT_METRICS,
    median_us: float = 800.0,
    sigma: float = 0.5,
    latency_factor: float = 1.0,
    error_every: int = 0,
    outage: tuple[int, int] | None = None,
    seed: int = 1,
    finished: bool = True,
    chunk_seconds: int = 600,
) -> SyntheticRun:
    """Write a run to the store at ``path`` and return what was written.

    Args:
        rate: samples per second per metric.
        median_us, sigma: lognormal latency distribution (before ``latency_factor``).
        latency_factor: multiply every latency (e.g. 1.2 for a 20 % slower candidate).
        error_every: every N-th second has one ``errors.chat_message.rate_limited`` (0 = none).
        outage: ``(from_second, to_second)`` offsets where all users are reconnecting and nothing is measured.
        finished: ``False`` leaves the run ``running`` (a live run).
    """
    rng = random.Random(seed)
    mu = math.log(median_us)
    with RunStore.open(path) as store:
        run_id = store.create_run(
            RunInfo(
                name=name,
                target="ws://127.0.0.1:8765/ws",
                options={"users": users, "synthetic": True, "seed": seed},
                versions={"wsgauge": "test"},
                machine={"cpus": 2},
                started_at=float(start),
            )
        )
        agg = SampleAggregator()
        for offset in range(seconds):
            second = start + offset
            at = second + 0.5
            down = outage is not None and outage[0] <= offset < outage[1]
            if not down:
                for metric in metrics:
                    for _ in range(rate):
                        agg.record_latency(metric, rng.lognormvariate(mu, sigma) * latency_factor, at=at)
                agg.incr(sent_counter("chat_message"), rate, at=at)
                agg.incr(received_counter("new_message"), rate, at=at)
                if error_every and offset % error_every == 0:
                    agg.incr(error_counter("chat_message", "rate_limited"), 1, at=at)
            state = "reconnecting" if down else "connected"
            set_connection_gauges(agg, state, [rng.randint(0, 5) for _ in range(users)], at)
            if offset == 0:
                for u in range(users):
                    agg.event("connected", f"student-w0-{u}", at=second + 0.1)
                    agg.record_latency(METRIC_CONNECT, rng.lognormvariate(mu, sigma), at=at)
            if outage is not None and offset == outage[0]:
                for u in range(users):
                    agg.event("reconnecting", f"student-w0-{u}", at=second + 0.2)
            if outage is not None and offset == outage[1]:
                for u in range(users):
                    agg.event("connected", f"student-w0-{u}", at=second + 0.2)
            if (offset + 1) % chunk_seconds == 0:
                write_drained(store, run_id, agg)
        write_drained(store, run_id, agg)
        store.write_server_metrics(run_id, start + 1, {"wsgauge_connections_open": float(users)})
        if finished:
            store.finish_run(run_id, "completed", ended_at=float(start + seconds))
    return SyntheticRun(run_id, start, seconds, tuple(metrics))
