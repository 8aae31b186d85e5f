"""The simulated users: an abstract :class:`WsUser` with the students' behaviours.

The entry file ``loadtest/students.py`` subclasses it and holds only ``@task``s. The back end that notifies
them is not a user (``loadtest/_backend.py``).

:class:`WsUser` owns one :class:`~loadtest._client.WsClient` and the connection state machine
(:data:`TRANSITIONS`: ``connected`` -> ``reconnecting`` -> ``connected`` | ``disconnected``); every transition
is a connection event in the run store. Lost connections are retried with
:class:`~loadtest._strategies.Backoff` (full jitter, capped, limited). Messages go through the strategies
switched on by the options: progress updates through the :class:`~loadtest._strategies.Debouncer`,
everything through the :class:`~loadtest._strategies.Batcher`, and while disconnected into the
:class:`~loadtest._strategies.OfflineCache`, flushed in order on reconnect. The user's ``queue_size`` is the
sum of the three.

Randomness (think times, peers, payloads, task choice, backoff jitter) comes from one ``random.Random`` per
user, seeded with ``--seed`` and the user's id, which follows spawn order: the same seed repeats the traffic.
Locust picks tasks with the global ``random`` module, so each persona has a single ``@task`` that makes its
own seeded choice.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import deque
from typing import Any, ClassVar

import gevent
import gevent.event
from locust import User

from loadtest._client import ConnectFailed, ConnectionLost, WsClient
from loadtest._clock import sleep_until
from loadtest._process_state import Runtime, runtime
from loadtest._schedule import OpenSchedule, ThinkTime
from loadtest._strategies import Backoff, Batcher, Debouncer, OfflineCache
from runstore.names import METRIC_SEND_LAG, error_counter

__all__ = ["TRANSITIONS", "WsUser"]

logger = logging.getLogger(__name__)

TRANSITIONS: dict[str, dict[str, str]] = {
    "disconnected": {
        "connected": "connected",
        "connect_failed": "reconnecting",
        "reconnecting": "reconnecting",
    },
    "connected": {"disconnected": "disconnected", "reconnecting": "reconnecting"},
    "reconnecting": {
        "connected": "connected",
        "connect_failed": "reconnecting",
        "gave_up": "disconnected",
        "disconnected": "disconnected",
    },
}
"""``state -> {event -> next state}``; the events are :data:`runstore.names.CONNECTION_EVENTS`."""

TOPICS: tuple[tuple[str, str], ...] = (
    ("Math", "Algebra"),
    ("Math", "Geometry"),
    ("Physics", "Mechanics"),
    ("Physics", "Optics"),
    ("Biology", "Cells"),
    ("Chemistry", "Bonds"),
    ("History", "Antiquity"),
    ("Languages", "Grammar"),
)
_WORDS = (
    "ok",
    "see you",
    "did you finish",
    "question 3?",
    "thanks!",
    "on my way",
    "lol",
    "great",
    "which page",
)


class WsUser(User):
    """A simulated front-end user holding one WebSocket, with the seed's client strategies.

    Class attributes (override in a subclass) set the persona's behaviour; the options (``--think-scale``,
    ``--open-rate``, the strategy switches ...) come from the run's :class:`~loadtest._process_state.Runtime`.
    """

    abstract = True

    persona: ClassVar[str] = "student"
    """Identity pool (:meth:`~loadtest._process_state.IdentityAllocator.allocate`): students and churning
    students share one, so that conversation partners include users who come and go."""
    think_median_s: ClassVar[float] = 2.0
    """Median pause between two actions (lognormal, sigma 0.6), before ``--think-scale``."""
    read_delay_mean_s: ClassVar[float] = 3.0
    """Mean time before a received notification is read (exponential), before ``--think-scale``."""
    action_weights: ClassVar[dict[str, int]] = {"chat": 6, "progress": 2, "ping": 1}
    """Relative frequency of a student's actions (chat is left out in the open model: it has its schedule)."""
    topics_per_user: ClassVar[int] = 2
    """How many (subject, topic) pairs a student works on at a time."""
    max_unread: ClassVar[int] = 100
    """Most received notifications remembered for reading (the oldest are forgotten beyond this)."""
    stop_drain_s: ClassVar[float] = 0.5
    """At stop, wait up to this long for outstanding replies before closing."""
    open_poisson: ClassVar[bool] = False
    """Open model: ``False`` sends exactly ``1/rate`` apart; ``True`` (or ``--open-arrivals poisson``) makes
    each user a Poisson process of that rate (seeded), for bursts closer to real traffic."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        rt: Runtime = runtime(environment)
        settings = rt.settings
        self.runtime = rt
        self.settings = settings
        self.identity = rt.identities.allocate(self.persona)
        self.user_id = self.identity.user_id
        self.rng = random.Random(f"{settings.seed}:{self.user_id}")
        self.think = ThinkTime(self.rng, settings.think_scale)
        self.aggregator = rt.aggregator
        self.client = WsClient(
            environment,
            rt.aggregator,
            rt.ws_url,
            user_id=self.user_id,
            cookie=self.identity.cookie,
            request_timeout=settings.request_timeout,
            use_acks=settings.use_acks,
            on_push=self.on_push,
            on_close=self._connection_lost,
        )
        self.debouncer: Debouncer[dict[str, Any]] | None = (
            Debouncer(settings.debounce_ms / 1000.0) if settings.debounce_ms > 0 else None
        )
        self.batcher: Batcher[tuple[dict[str, Any], float | None]] | None = (
            Batcher(settings.batch_size, max(settings.batch_ms, 1.0) / 1000.0)
            if settings.batch_size >= 2
            else None
        )
        self.offline: OfflineCache[dict[str, Any]] | None = OfflineCache() if settings.offline_cache else None
        self.backoff = Backoff(
            settings.reconnect_base_ms / 1000.0,
            settings.reconnect_max_ms / 1000.0,
            settings.reconnect_retries,
            self.rng,
        )
        self._conn_state = "disconnected"
        self._running = False
        self._flushing = False
        self._greenlets: list[gevent.Greenlet] = []
        self._reconnector: gevent.Greenlet | None = None
        self._wake = gevent.event.Event()
        self._unread: deque[tuple[float, str]] = deque(maxlen=self.max_unread)
        self._progress: list[list[Any]] = []
        self._topic_cursor = self.rng.randrange(len(TOPICS))
        for _ in range(self.topics_per_user):
            self._progress.append(self._next_topic())
        self.schedule: OpenSchedule | None = None
        rt.users.add(self)

    # -- gauges read by the lifecycle's sampler -------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        """``connected``, ``reconnecting`` or ``disconnected`` (the seed's ``connectionStatus``)."""
        return self._conn_state

    @property
    def queue_size(self) -> int:
        """Messages held client-side: debounced, batched, offline-cached (the seed's ``messageQueueSize``)."""
        size = len(self.offline) if self.offline is not None else 0
        if self.debouncer is not None:
            size += len(self.debouncer)
        if self.batcher is not None:
            size += len(self.batcher)
        return size

    # -- lifecycle -------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._running = True
        if self.debouncer is not None or self.batcher is not None:
            self._greenlets.append(gevent.spawn(self._pump))
        if not self._try_connect():
            self._start_reconnecting("initial connect failed")
        total_users = getattr(self.environment.parsed_options, "num_users", None)
        open_rate = self.settings.open_rate_per_user(total_users)
        if open_rate > 0:
            poisson = self.open_poisson or self.settings.open_poisson
            self.schedule = OpenSchedule(open_rate, time.time(), self.rng, poisson=poisson)
            self._greenlets.append(gevent.spawn(self._open_loop))

    def on_stop(self) -> None:
        if not self._running:
            return
        self._running = False
        current = gevent.getcurrent()
        for greenlet in [*self._greenlets, self._reconnector]:
            if greenlet is not None and greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets.clear()
        self._reconnector = None
        if self.client.connected:
            self._flush_strategies(final=True)
            self.client.close(drain=self.stop_drain_s)
        if self._conn_state != "disconnected":
            self._transition("disconnected", "user stopped")
        self.runtime.users.discard(self)

    def _transition(self, event: str, detail: str = "") -> None:
        try:
            self._conn_state = TRANSITIONS[self._conn_state][event]
        except KeyError:
            raise RuntimeError(
                f"connection event {event!r} not allowed in state {self._conn_state!r}"
            ) from None
        self.aggregator.event(event, self.user_id, detail)

    def _try_connect(self) -> bool:
        try:
            self.client.connect()
        except ConnectFailed as exc:
            self._transition("connect_failed", exc.code)
            return False
        self.backoff.reset()
        self._transition("connected")
        self._flush_offline()
        return True

    def _connection_lost(self, reason: str) -> None:
        """``WsClient.on_close``: the connection dropped (called in the receive greenlet)."""
        if not self._running or self._conn_state != "connected":
            return
        self._transition("disconnected", reason[:200])
        self._start_reconnecting(reason)

    def _start_reconnecting(self, reason: str) -> None:
        if self._conn_state != "reconnecting":
            self._transition("reconnecting", reason[:200])
        if self._reconnector is None or self._reconnector.dead:
            self._reconnector = gevent.spawn(self._reconnect_loop)

    def _reconnect_loop(self) -> None:
        # Loops until connected for good: a connection lost again while flushing the cache keeps it going.
        while self._running and self._conn_state != "connected":
            delay = self.backoff.next_delay()
            if delay is None:
                self._transition("gave_up", f"after {self.backoff.attempt} attempts")
                return
            gevent.sleep(delay)
            if self._running and not self.client.connected:
                self._try_connect()

    # -- sending through the strategies ----------------------------------------------------------------------

    def send(self, message: dict[str, Any], *, scheduled: float | None = None) -> None:
        """Send ``message`` through the strategies switched on (debounce, batch, offline cache).

        Args:
            scheduled: open model: the unix time this send was scheduled for.
        """
        if self._conn_state != "connected" or self._flushing:
            self._park(message)
            return
        if self.debouncer is not None and message["type"] == "progress_update":
            progress = message["progress"]
            self.debouncer.offer((progress["subject"], progress["topic"]), message, time.monotonic())
            if len(self.debouncer) == 1:
                self._wake.set()
            return
        self._emit(message, scheduled)

    def _emit(self, message: dict[str, Any], scheduled: float | None = None) -> None:
        if self.batcher is not None:
            batch = self.batcher.add((message, scheduled), time.monotonic())
            if batch is not None:
                self._send_batch(batch)
            elif len(self.batcher) == 1:
                self._wake.set()
            return
        try:
            self.client.send(message, scheduled=scheduled)
        except ConnectionLost:
            self._park(message)

    def _send_batch(self, batch: list[tuple[dict[str, Any], float | None]]) -> None:
        messages = [m for m, _ in batch]
        scheduled = [s for _, s in batch if s is not None]
        try:
            self.client.send_batch(messages, scheduled=min(scheduled) if scheduled else None)
        except ConnectionLost:
            for message in messages:
                self._park(message)

    def _park(self, message: dict[str, Any]) -> None:
        """Keep a message that cannot be sent now: in the offline cache, or count it as dropped."""
        if self.offline is not None:
            self.offline.push(message)
        else:
            self.aggregator.incr(error_counter(message["type"], "not_connected"))

    def _flush_offline(self) -> None:
        """Send everything cached while disconnected, in order; a failure keeps the rest cached."""
        offline = self.offline
        if offline is None or not len(offline):
            return
        self._flushing = True  # new sends queue behind the cache, so order holds
        try:
            offline.flush(self._send_cached)
        finally:
            self._flushing = False

    def _send_cached(self, message: dict[str, Any]) -> bool:
        try:
            self.client.send(message)
        except ConnectionLost:
            return False
        return True

    def _flush_strategies(self, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.debouncer is not None:
            for message in self.debouncer.drain() if final else self.debouncer.due(now):
                self._emit(message)
        if self.batcher is not None:
            if final:
                rest = self.batcher.drain()
                for start in range(0, len(rest), self.batcher.size):
                    self._send_batch(rest[start : start + self.batcher.size])
            else:
                batch = self.batcher.due(now)
                while batch:
                    self._send_batch(batch)
                    batch = self.batcher.due(now)

    def _pump(self) -> None:
        """Background greenlet: release debounced updates and partial batches when their time comes."""
        while self._running:
            deadlines = [
                d
                for d in (
                    self.debouncer.next_deadline() if self.debouncer is not None else None,
                    self.batcher.next_deadline() if self.batcher is not None else None,
                )
                if d is not None
            ]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            if timeout > 0:
                self._wake.wait(timeout)
                self._wake.clear()
            if self._conn_state == "connected" and not self._flushing:
                self._flush_strategies()
            elif deadlines:
                gevent.sleep(0.05)  # disconnected: keep holding; the reconnect flushes the cache first

    # -- open model ------------------------------------------------------------------------------------------

    def _open_loop(self) -> None:
        """Background greenlet: chat messages on the fixed-rate schedule; latency counts from the schedule."""
        schedule = self.schedule
        assert schedule is not None
        while self._running:
            at = schedule.next_send_at()
            sleep_until(at)
            lag = OpenSchedule.lag(time.time(), at)
            self.aggregator.record_latency(METRIC_SEND_LAG, lag * 1e6)
            message = self._chat_message()
            if message is not None:
                self.send(message, scheduled=at)
            else:
                gevent.sleep(1.0)

    # -- behaviours ------------------------------------------------------------------------------------------

    def wait_time(self) -> float:
        """Think time between two actions: lognormal around :attr:`think_median_s`."""
        return self.think.lognormal(self.think_median_s)

    def student_step(self) -> None:
        """One action of a student: read due notifications, else chat, report progress or ping."""
        if self._read_due_notifications():
            return
        weights = self.action_weights
        if self.schedule is not None:
            weights = {k: v for k, v in weights.items() if k != "chat"}
        action = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        if action == "chat":
            self.chat()
        elif action == "progress":
            self.report_progress()
        else:
            self.ping()

    def chat(self) -> None:
        """Send a chat message to one of the user's conversation partners."""
        message = self._chat_message()
        if message is not None:
            self.send(message)

    def _chat_message(self) -> dict[str, Any] | None:
        peers = self.identity.peers
        if not peers:
            return None
        content = f"{self.rng.choice(_WORDS)} #{self.rng.randrange(1_000_000)}"
        return {"type": "chat_message", "receiverId": self.rng.choice(peers), "message": {"content": content}}

    def report_progress(self) -> None:
        """Report progress on one of the user's topics; completion only rises over the session."""
        slot = self.rng.randrange(len(self._progress))
        subject, topic, completion = self._progress[slot]
        completion = round(min(100.0, completion + self.rng.uniform(1.0, 9.0)), 1)
        self._progress[slot][2] = completion
        self.send(
            {
                "type": "progress_update",
                "progress": {"subject": subject, "topic": topic, "completion": completion},
            }
        )
        if completion >= 100.0:
            self._progress[slot] = self._next_topic()

    def _next_topic(self) -> list[Any]:
        subject, topic = TOPICS[self._topic_cursor % len(TOPICS)]
        lap = self._topic_cursor // len(TOPICS)
        self._topic_cursor += 1
        return [subject, topic if lap == 0 else f"{topic} {lap + 1}", 0.0]

    def ping(self) -> None:
        """Application-level ``ping``; its ``pong`` round trip is the seed's ``websocketLatency``."""
        if self._conn_state == "connected":
            with contextlib.suppress(ConnectionLost):
                self.client.ping()

    def on_push(self, kind: str, data: dict[str, Any]) -> None:
        """``WsClient.on_push``: remember new notifications, to read them after a think time."""
        if kind == "notification_update" and data.get("read") is False:
            notification_id = data.get("id")
            if type(notification_id) is str:
                read_at = time.monotonic() + self.think.exponential(self.read_delay_mean_s)
                self._unread.append((read_at, notification_id))

    def _read_due_notifications(self) -> bool:
        unread = self._unread
        if not unread or unread[0][0] > time.monotonic():
            return False
        _, notification_id = unread.popleft()
        self.send({"type": "notification_read", "id": notification_id})
        return True

    # -- churn -----------------------------------------------------------------------------------------------

    def go_away(self, away_s: float) -> None:
        """Leave for ``away_s`` seconds (closing the socket), then come back and receive what was missed.

        While away the user keeps "typing": chat messages go to the offline cache, sent on return.
        """
        if self._conn_state != "connected":
            return
        self.client.close(drain=self.stop_drain_s)
        self._transition("disconnected", "went away")
        until = time.monotonic() + away_s
        while self._running:
            left = until - time.monotonic()
            if left <= 0:
                break
            gevent.sleep(min(left, self.think.lognormal(self.think_median_s) or left))
            if time.monotonic() < until:
                message = self._chat_message()
                if message is not None:
                    self.send(message)
        if self._running and not self._try_connect():
            self._start_reconnecting("coming back failed")
