"""Runs of one minute, one hour and one day, written fast through the real run-store API.

For the report tests and ``bench/report_scale.py``: what matters at scale is the number of seconds, rows and
histograms, not the latency of each sample. Instead of recording every sample (``tests/synthetic_runs.py``:
about three minutes for a day), each second reuses one of a few prebuilt histograms per metric (seeded
lognormal shapes), the samples of a day go to the store in large ``write_samples`` batches, and a long run
may record latency in one second of every ``latency_every`` (its per-minute roll-ups are then exact for what
was recorded; reports of runs over two hours read only those). One second carries a known spike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runstore import histogram as hdr
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
from runstore.samples import ConnectionEvent, GaugeStat, SecondSample
from runstore.store import RunInfo, RunStore

__all__ = ["SCALE_METRICS", "SPIKE_US", "ScaledRun", "write_scaled_run"]

SCALE_METRICS: tuple[str, ...] = (ack_metric("chat_message"), METRIC_DELIVERY_CHAT, METRIC_PONG)
SPIKE_US = 480_000
"""The latency recorded once, in the spike second, for every metric."""
_SHAPES = 12


@dataclass(frozen=True)
class ScaledRun:
    run_id: int
    start: int
    seconds: int
    spike_second: int
    """Offset of the second holding one :data:`SPIKE_US` sample per metric."""
    error_seconds: tuple[int, ...]
    """Offsets of the seconds with one ``errors.chat_message.timeout`` each."""
    users: int
    sent_per_second: int


def _shapes(rng: random.Random, rate: int, median_us: float) -> list:
    shapes = []
    for i in range(_SHAPES):
        histogram = hdr.new_histogram()
        mu = math.log(median_us * (1.0 + 0.05 * i))
        for _ in range(rate):
            hdr.record_us(histogram, rng.lognormvariate(mu, 0.5))
        shapes.append(histogram)
    return shapes


def write_scaled_run(
    path: Path,
    *,
    seconds: int,
    name: str = "scaled",
    start: int = 1_700_000_000,
    users: int = 20,
    rate: int = 40,
    metrics: Sequence[str] = SCALE_METRICS,
    latency_every: int = 1,
    errors_at: Sequence[int] = (),
    scrape_every: int | None = 5,
    spike_at: float = 0.5,
    seed: int = 7,
    batch: int = 3600,
) -> ScaledRun:
    """Write one run and return what was written.

    Args:
        rate: samples per recorded second per metric (also the ``sent.chat_message`` per second).
        latency_every: record latency in one second of this many (1: every second).
        errors_at: offsets of seconds with one ``timeout`` error of ``chat_message`` (none: error-free).
        scrape_every: seconds between scrapes of server metrics (a counter, a histogram, a gauge); ``None``:
            never scraped.
        spike_at: where the spike second lies, as a fraction of the run.
    """
    rng = random.Random(seed)
    shapes = {m: _shapes(rng, rate, 800.0 + 150.0 * i) for i, m in enumerate(metrics)}
    spike = int(seconds * spike_at) // latency_every * latency_every
    errors = tuple(sorted(set(errors_at)))
    with RunStore.open(path) as store:
        run_id = store.create_run(
            RunInfo(
                name=name,
                target="ws://127.0.0.1:8765/ws",
                options={"users": users, "spawn_rate": 5.0, "scenario": "chat", "open_rate": None,
                         "tags": ["scale", f"{seconds}s"]},
                versions={"wsgauge": "test"},
                machine={"cpus": 2},
                started_at=float(start),
            )
        )  # fmt: skip
        pending: list[SecondSample] = []
        error_set = set(errors)
        for offset in range(seconds):
            second = start + offset
            sample = SecondSample(second)
            if offset % latency_every == 0:
                for metric in metrics:
                    histogram = hdr.new_histogram()
                    histogram.add(shapes[metric][rng.randrange(_SHAPES)])
                    if offset == spike:
                        hdr.record_us(histogram, SPIKE_US)
                    sample.latency[metric] = histogram
            if offset == 0:
                connect = hdr.new_histogram()
                for _ in range(users):
                    hdr.record_us(connect, rng.lognormvariate(math.log(900.0), 0.3))
                sample.latency[METRIC_CONNECT] = connect
            sample.counters[sent_counter("chat_message")] = rate
            sample.counters[received_counter("new_message")] = rate
            if offset in error_set:
                sample.counters[error_counter("chat_message", "timeout")] = 1
            for state in CONNECTION_STATES:
                value = float(users) if state == "connected" else 0.0
                sample.gauges[state_gauge(state)] = GaugeStat(value, users, min(value, 1.0), min(value, 1.0))
            queue = float(offset % 5)
            sample.gauges[GAUGE_QUEUE_SIZE] = GaugeStat(queue * users, users, 0.0, queue + 1)
            pending.append(sample)
            if len(pending) >= batch:
                store.write_samples(run_id, pending)
                pending = []
        store.write_samples(run_id, pending)
        store.write_events(
            run_id, [ConnectionEvent(start + 0.1, f"user-{u}", "connected", "") for u in range(users)]
        )
        if scrape_every:
            for offset in range(0, seconds, scrape_every):
                k = offset + 1
                store.write_server_metrics(
                    run_id,
                    start + offset,
                    {
                        'wsgauge_frames_in_total{type="chat_message"}': float(rate * k),
                        'wsgauge_frames_in_total{type="ping"}': float(k),
                        'wsgauge_handling_seconds_bucket{le="0.001"}': 30.0 * k,
                        'wsgauge_handling_seconds_bucket{le="0.005"}': 39.0 * k,
                        'wsgauge_handling_seconds_bucket{le="+Inf"}': 40.0 * k,
                        "wsgauge_handling_seconds_count": 40.0 * k,
                        "wsgauge_handling_seconds_sum": 0.04 * k,
                        "wsgauge_connections_open": float(users),
                    },
                )
        store.finish_run(run_id, "completed", ended_at=float(start + seconds))
    return ScaledRun(run_id, start, seconds, spike, errors, users, rate)
