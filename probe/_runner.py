"""The probe's event loop: the schedule, the two connections, alerts, metrics, webhook and store hand-off.

Everything here is glue: decisions live in the sans-I/O core (``probe._checks``, ``probe._alerts``,
``probe._schedule``), SQLite in the writer thread (``probe._writer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from probe._alerts import AlertEvaluator, AlertTransition
from probe._auth import Credentials
from probe._backoff import Backoff
from probe._checks import CheckDone, Notify, ProbeChecks, Send
from probe._connection import AuthRefused, ProbeConnection
from probe._metrics import ProbeMetrics
from probe._rules import AlertRule
from probe._schedule import CheckScheduler
from probe._webhook import WebhookSender
from probe._writer import StoreEvent, StoreWriter
from runstore.samples import SampleAggregator

__all__ = ["ProbeConfig", "run_probe"]

TICK_S = 0.1
"""The longest the loop sleeps: timeouts are noticed this late at most. It wakes exactly when a round is due
(a round's latencies count from its scheduled time, so waking late would add to them)."""


@dataclass(frozen=True)
class ProbeConfig:
    """What the command line decided."""

    name: str
    ws_url: str
    interval_s: float = 5.0
    timeout_s: float = 5.0
    rules: Sequence[AlertRule] = ()
    notify_url: str | None = None
    admin_token: str | None = None
    webhook_url: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    reconnect: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=30.0))
    duration_s: float | None = None
    """Stop after this long (tests, smoke runs); ``None``: run until SIGINT/SIGTERM."""


class _Probe:
    def __init__(
        self, config: ProbeConfig, credentials: Credentials, writer: StoreWriter, out: TextIO
    ) -> None:
        self.config = config
        self.out = out
        self.writer = writer
        self.agg = SampleAggregator()
        self.alerts = AlertEvaluator(config.rules)
        self.metrics = ProbeMetrics(config.name, [r.name for r in config.rules])
        self.checks = ProbeChecks(
            credentials.user_ids,
            self.agg,
            timeout=config.timeout_s,
            notify=bool(config.notify_url and config.admin_token),
            observer=self._check_done,
            latency_observer=self._latency,
            label=config.name,
        )
        self.credentials = credentials
        self.alert_events: list[StoreEvent] = []
        self.webhook = (
            WebhookSender(config.webhook_url, config.name, config.ws_url) if config.webhook_url else None
        )
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[object]] = set()

    def _check_done(self, done: CheckDone) -> None:
        self.alerts.observe_check(done)
        self.metrics.count_check(done.request_type, done.ok)

    def _latency(self, metric: str, value_us: float, at: float) -> None:
        self.alerts.observe_latency(metric, value_us, at)
        self.metrics.observe_latency(metric, value_us)

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        print(f"{stamp} {text}", file=self.out, flush=True)

    def _state(self, user: int, state: str, detail: str) -> None:
        who = self.credentials.user_ids[user]
        self._say(f"{who} {state}" + (f" ({detail})" if detail else ""))

    def _first_connect_pending(self) -> bool:
        return not any(u.ever_connected for u in self.checks.users)

    def _alert(self, transition: AlertTransition) -> None:
        self._say(transition.line())
        self.alert_events.append(
            StoreEvent(transition.at, transition.rule, transition.kind, transition.detail_json())
        )
        self.metrics.set_alert(transition.rule, transition.kind == "alert_firing")
        if self.webhook is not None:
            self.webhook.send(transition)

    async def _notify(self, session: aiohttp.ClientSession, action: Notify) -> None:
        assert self.config.notify_url and self.config.admin_token
        headers = {"Authorization": f"Bearer {self.config.admin_token}"}
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async with session.post(
                    self.config.notify_url, json=action.body, headers=headers
                ) as response:
                    await response.read()
                    status: int | None = response.status
            code = ""
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, code = None, "timeout" if isinstance(exc, TimeoutError) else "network"
        self.checks.http_done(action.token, status, time.time(), code)

    def _spawn(self, coroutine: object) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _second(self, now: float, connections: Sequence[ProbeConnection]) -> None:
        queue_sizes = [c.queue_size for c in connections]
        states = self.checks.states()
        self.checks.snapshot(now, queue_sizes)
        self.alerts.observe_states(states, now)
        for transition in self.alerts.evaluate(now):
            self._alert(transition)
        self.metrics.set_states(states, sum(queue_sizes), self.writer.failing)
        samples, events = self.agg.drain(before=now)
        self.writer.submit(
            samples, [StoreEvent(e.ts, e.user, e.kind, e.detail) for e in events] + self.alert_events
        )
        self.alert_events = []

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        runner = None
        if config.metrics_port is not None:
            try:
                runner, port = await self.metrics.serve(config.metrics_host, config.metrics_port)
            except OSError as exc:
                print(
                    f"wsgauge-probe: --metrics-port {config.metrics_port}: cannot listen on "
                    f"{config.metrics_host} ({exc.strerror or exc})",
                    file=sys.stderr,
                )
                return 2
            self._say(f"metrics on http://{config.metrics_host}:{port}/metrics")
        if self.webhook is not None:
            self.webhook.start()
        rc = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            connections = [
                ProbeConnection(
                    i,
                    config.ws_url,
                    self.credentials,
                    self.checks,
                    session,
                    Backoff(
                        config.reconnect.base,
                        config.reconnect.cap,
                        config.reconnect.factor,
                        config.reconnect.jitter,
                    ),
                    self._first_connect_pending,
                    connect_timeout=max(config.timeout_s, 1.0),
                    on_state=self._state,
                )
                for i in range(2)
            ]
            conn_tasks = [self._spawn(c.run()) for c in connections]
            scheduler = CheckScheduler(config.interval_s, time.time() + min(config.interval_s, 1.0))
            started = time.monotonic()
            last_second = int(time.time())
            try:
                while not self.stop.is_set():
                    failed = [t for t in conn_tasks if t.done() and not t.cancelled() and t.exception()]
                    if failed:
                        exc = failed[0].exception()
                        if isinstance(exc, AuthRefused):
                            print(f"wsgauge-probe: {exc}", file=sys.stderr, flush=True)
                            rc = 2
                            break
                        raise exc  # type: ignore[misc]
                    now = time.time()
                    due = scheduler.poll(now)
                    if due is not None:
                        for action in self.checks.start_round(due.at, due.skipped):
                            if isinstance(action, Send):
                                connections[action.user].send(action.frame, action.scheduled)
                            else:
                                self._spawn(self._notify(session, action))
                    self.checks.expire(now)
                    if int(now) != last_second:
                        last_second = int(now)
                        self._second(now, connections)
                    if config.duration_s is not None and time.monotonic() - started >= config.duration_s:
                        break
                    now = time.time()
                    pause = min(scheduler.next_at - now, math.floor(now) + 1 - now, TICK_S)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), max(pause, 0.0))
            finally:
                self.checks.close(time.time())
                for task in conn_tasks:
                    task.cancel()
                for connection in connections:
                    await connection.close()
                await asyncio.gather(*conn_tasks, return_exceptions=True)
                for task in list(self.tasks):
                    task.cancel()
                samples, events = self.agg.drain()
                self.writer.submit(
                    samples, [StoreEvent(e.ts, e.user, e.kind, e.detail) for e in events] + self.alert_events
                )
                if self.webhook is not None:
                    await self.webhook.stop()
                if runner is not None:
                    await runner.cleanup()
        return rc


async def run_probe(config: ProbeConfig, credentials: Credentials, writer: StoreWriter, out: TextIO) -> int:
    """Probe until SIGINT/SIGTERM (exit 0) or a fatal credential error (exit 2)."""
    probe = _Probe(config, credentials, writer, out)
    return await probe.run()
