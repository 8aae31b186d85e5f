"""The probe's own Prometheus metrics, so Grafana and Alertmanager users can adopt it without our UI.

One registry per probe (never the global one). Served by aiohttp on ``--metrics-port`` at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from probe._checks import PROBE_METRICS

__all__ = ["ProbeMetrics"]

_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class ProbeMetrics:
    """Latency histograms per metric, connection states, queue size, checks, errors, alerts firing."""

    def __init__(self, probe: str, rules: Sequence[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"probe": probe}
        self.latency = Histogram(
            "wsgauge_probe_latency_seconds",
            "Probe round-trip latency by metric (the run store's names: pong, ack:chat_message ...)",
            ["probe", "metric"],
            buckets=_BUCKETS_S,
            registry=self.registry,
        )
        self.users = Gauge(
            "wsgauge_probe_users",
            "Probe users in each connection state",
            ["probe", "state"],
            registry=self.registry,
        )
        self.queue_size = Gauge(
            "wsgauge_probe_queue_size",
            "Frames waiting in the probe's outbound queues",
            ["probe"],
            registry=self.registry,
        )
        self.checks = Counter(
            "wsgauge_probe_checks",
            "Finished checks by type and outcome",
            ["probe", "type", "outcome"],
            registry=self.registry,
        )
        self.alert_firing = Gauge(
            "wsgauge_probe_alert_firing",
            "1 while the alert rule is breached",
            ["probe", "rule"],
            registry=self.registry,
        )
        self.store_failing = Gauge(
            "wsgauge_probe_store_failing", "1 while run store writes fail", ["probe"], registry=self.registry
        )
        self._probe = probe
        for metric in PROBE_METRICS:
            self.latency.labels(probe, metric)
        for state in ("connected", "reconnecting", "disconnected"):
            self.users.labels(probe, state).set(0)
        for rule in rules:
            self.alert_firing.labels(probe, rule).set(0)
        self.queue_size.labels(**labels).set(0)
        self.store_failing.labels(**labels).set(0)

    def observe_latency(self, metric: str, value_us: float) -> None:
        self.latency.labels(self._probe, metric).observe(value_us / 1e6)

    def set_states(self, states: Sequence[str], queue_size: int, store_failing: bool) -> None:
        for state in ("connected", "reconnecting", "disconnected"):
            self.users.labels(self._probe, state).set(sum(s == state for s in states))
        self.queue_size.labels(self._probe).set(queue_size)
        self.store_failing.labels(self._probe).set(1 if store_failing else 0)

    def count_check(self, request_type: str, ok: bool) -> None:
        self.checks.labels(self._probe, request_type, "ok" if ok else "failed").inc()

    def set_alert(self, rule: str, firing: bool) -> None:
        self.alert_firing.labels(self._probe, rule).set(1 if firing else 0)

    async def serve(self, host: str, port: int) -> tuple[web.AppRunner, int]:
        """Serve ``/metrics`` on ``host:port`` (0: a free port); returns the runner and the bound port.

        Raises:
            OSError: the port cannot be bound.
        """

        async def metrics(_request: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.add_routes([web.get("/metrics", metrics)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        server = site._server
        bound = port
        if server is not None and server.sockets:  # type: ignore[union-attr]
            bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, bound
