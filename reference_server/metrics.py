"""Server metrics in the Prometheus text format, one registry per application.

The hot path only bumps plain Python ints (no locks, no label lookups); a custom collector turns
them into metric families when ``/metrics`` is scraped. Exposed series (prefix ``wsgauge_``):

=================================  =========  ===================================================
``connections_open``               gauge      open WebSocket connections
``connections_total``              counter    accepted WebSocket connections
``connections_closed_total``       counter    closes, by ``code``
``auth_failures_total``            counter    refused upgrades, by ``reason``
``frames_in_total``                counter    inbound frames, by ``type`` (``invalid`` if unparsable)
``frames_out_total``               counter    outbound frames, by ``type``
``errors_total``                   counter    error replies and closes, by ``code``
``handling_seconds``               histogram  frame received → its reply written (acks: after commit)
``outbound_buffer_bytes``          gauge      bytes not yet handed to the kernel, all connections
``outbound_buffer_max_bytes``      gauge      largest single connection's write buffer
``event_loop_lag_seconds``         gauge      last measured event-loop lag
``event_loop_lag_max_seconds``     gauge      largest lag since the previous scrape
``db_commit_seconds``              histogram  duration of each group commit
``db_commit_jobs``                 histogram  jobs per group commit
``db_pending_jobs``                gauge      jobs queued for the store thread
``inbox_rereads_total``            counter    store re-reads by a connection: a gap in its inbox
                                              ``seq`` (``reason="gap"``), or pushes possibly lost
                                              while Redis was away (``reason="resync"``)
``bus_published_total``            counter    pushes published to Redis (several processes)
``bus_received_total``             counter    pushes from other processes delivered here
``bus_connected``                  gauge      1 while the Redis subscriber is connected
=================================  =========  ===================================================
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Histogram", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_JOB_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Histogram:
    """A lock-free (single-thread) histogram with fixed upper bounds."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        buckets: list[tuple[str, float]] = []
        acc = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            acc += count
            buckets.append((repr(float(bound)), acc))
        acc += self.counts[-1]
        buckets.append(("+Inf", acc))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum)


class ServerMetrics(Collector):
    """All server metrics, and the private registry that exports them.

    Args:
        buffer_sizes: Returns the write-buffer size of every open connection (scrape time).
        pending_jobs: Returns the store's queued job count (scrape time).
        bus_stats: Returns ``(published, received, connected)`` of the Redis bus, or ``None``
            without one (scrape time).
    """

    def __init__(
        self,
        buffer_sizes: Callable[[], list[int]] = list,
        pending_jobs: Callable[[], int] = int,
        bus_stats: Callable[[], tuple[int, int, bool] | None] = lambda: None,
    ) -> None:
        self.connections_open = 0
        self.connections_total = 0
        self.closed: defaultdict[int, int] = defaultdict(int)
        self.auth_failures: defaultdict[str, int] = defaultdict(int)
        self.frames_in: defaultdict[str, int] = defaultdict(int)
        self.frames_out: defaultdict[str, int] = defaultdict(int)
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.handling = Histogram(_LATENCY_BUCKETS)
        self.commit = Histogram(_LATENCY_BUCKETS)
        self.commit_jobs = Histogram(_JOB_BUCKETS)
        self.loop_lag = 0.0
        self.loop_lag_max = 0.0
        self._buffer_sizes = buffer_sizes
        self._pending_jobs = pending_jobs
        self._bus_stats = bus_stats
        self.rereads: defaultdict[str, int] = defaultdict(int)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- hot path (event loop thread only) ----------------------------------------------------

    def frame_in(self, kind: str) -> None:
        self.frames_in[kind] += 1

    def frame_out(self, kind: str, n: int = 1) -> None:
        self.frames_out[kind] += n

    def error(self, code: str) -> None:
        self.errors[code] += 1

    def observe_commit(self, seconds: float, jobs: int) -> None:
        self.commit.observe(seconds)
        self.commit_jobs.observe(jobs)

    def observe_loop_lag(self, seconds: float) -> None:
        self.loop_lag = seconds
        if seconds > self.loop_lag_max:
            self.loop_lag_max = seconds

    # -- export -------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "wsgauge_connections_open", "Open WebSocket connections", value=self.connections_open
        )
        yield CounterMetricFamily(
            "wsgauge_connections", "Accepted WebSocket connections", value=self.connections_total
        )
        yield _labelled("wsgauge_connections_closed", "Closed connections by close code", "code",
                        self.closed)  # fmt: skip
        yield _labelled("wsgauge_auth_failures", "Refused upgrades by reason", "reason",
                        self.auth_failures)  # fmt: skip
        yield _labelled("wsgauge_frames_in", "Inbound frames by type", "type", self.frames_in)
        yield _labelled("wsgauge_frames_out", "Outbound frames by type", "type", self.frames_out)
        yield _labelled("wsgauge_errors", "Errors and fault closes by code", "code", self.errors)
        yield self.handling.family(
            "wsgauge_handling_seconds", "Frame received to reply written (acks after commit)"
        )
        sizes = self._buffer_sizes()
        yield GaugeMetricFamily(
            "wsgauge_outbound_buffer_bytes", "Bytes in all write buffers", value=sum(sizes)
        )
        yield GaugeMetricFamily(
            "wsgauge_outbound_buffer_max_bytes",
            "Largest write buffer of one connection",
            value=max(sizes, default=0),
        )
        yield GaugeMetricFamily(
            "wsgauge_event_loop_lag_seconds", "Last measured event-loop lag", value=self.loop_lag
        )
        yield GaugeMetricFamily(
            "wsgauge_event_loop_lag_max_seconds",
            "Largest event-loop lag since the previous scrape",
            value=self.loop_lag_max,
        )
        self.loop_lag_max = self.loop_lag
        yield self.commit.family("wsgauge_db_commit_seconds", "Group commit duration")
        yield self.commit_jobs.family("wsgauge_db_commit_jobs", "Jobs per group commit")
        yield GaugeMetricFamily(
            "wsgauge_db_pending_jobs", "Jobs queued for the store", value=self._pending_jobs()
        )
        yield _labelled("wsgauge_inbox_rereads", "Inbox re-reads from the store by reason", "reason",
                        self.rereads)  # fmt: skip
        bus = self._bus_stats()
        if bus is not None:
            published, received, connected = bus
            yield CounterMetricFamily("wsgauge_bus_published", "Pushes published to Redis", value=published)
            yield CounterMetricFamily(
                "wsgauge_bus_received", "Pushes from other processes delivered here", value=received
            )
            yield GaugeMetricFamily(
                "wsgauge_bus_connected", "Redis subscriber connected", value=int(connected)
            )


def _labelled(
    name: str, doc: str, label: str, values: Mapping[int, int] | Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items(), key=lambda kv: str(kv[0])):
        family.add_metric([str(key)], value)
    return family
