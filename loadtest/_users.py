"""The seed's simulated users: an abstract :class:`WsUser` with the students' behaviours.

The entry file ``loadtest/students.py`` subclasses it and holds only ``@task``s. The back end that notifies
them is not a user (``loadtest/_backend.py``).

:class:`WsUser` is a :class:`~loadtest.user_api.ProtocolUser` -- the public user API, which owns the
connection state machine, reconnecting with backoff, the offline cache, the gauges and the open-model
schedule -- whose connection is the seed's :class:`~loadtest._client.WsClient` (built on that API too). What
is the seed's own is here: its personas' actions, and two more of the seed's client strategies, progress
updates through the :class:`~loadtest.user_api.Debouncer` and everything through the
:class:`~loadtest.user_api.Batcher`. The user's ``queue_size`` is the sum of those and the offline cache.

Randomness (think times, peers, payloads, task choice, backoff jitter) comes from one ``random.Random`` per
user, seeded with ``--seed`` and the user's id, which follows spawn order: the same seed repeats the traffic.
Locust picks tasks with the global ``random`` module, so each persona has a single ``@task`` that makes its
own seeded choice.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from typing import Any, ClassVar

import gevent
import gevent.event

from loadtest._client import SeedProtocol, WsClient
from loadtest.user_api import (
    TRANSITIONS,
    Batcher,
    ConnectionLost,
    ConnectOptions,
    Debouncer,
    ProtocolUser,
)

__all__ = ["TRANSITIONS", "WsUser"]

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


class WsUser(ProtocolUser):
    """A simulated front-end user holding one WebSocket, with the seed's client strategies.

    Class attributes (override in a subclass) set the persona's behaviour; the options (``--think-scale``,
    ``--open-rate``, the strategy switches ...) come from the run's :class:`~loadtest._process_state.Runtime`.
    """

    abstract = True

    protocol = SeedProtocol()
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
        settings = self.settings
        self.client: WsClient = self.connection  # type: ignore[assignment]
        """The seed's connection (the same object as :attr:`connection`)."""
        self.debouncer: Debouncer[dict[str, Any]] | None = (
            Debouncer(settings.debounce_ms / 1000.0) if settings.debounce_ms > 0 else None
        )
        self.batcher: Batcher[tuple[dict[str, Any], float | None]] | None = (
            Batcher(settings.batch_size, max(settings.batch_ms, 1.0) / 1000.0)
            if settings.batch_size >= 2
            else None
        )
        self._wake = gevent.event.Event()
        self._unread: deque[tuple[float, str]] = deque(maxlen=self.max_unread)
        self._progress: list[list[Any]] = []
        self._topic_cursor = self.rng.randrange(len(TOPICS))
        for _ in range(self.topics_per_user):
            self._progress.append(self._next_topic())

    def make_connection(self, url: str, options: ConnectOptions, request_timeout: float) -> WsClient:
        """The seed's :class:`~loadtest._client.WsClient` (``--acks``), handing pushes to :meth:`on_push`."""
        return WsClient(
            self.environment,
            self.aggregator,
            url,
            user_id=self.user_id,
            request_timeout=request_timeout,
            use_acks=self.settings.use_acks,
            on_push=self.on_push,
            on_close=self._connection_lost,
            options=options,
        )

    # -- gauges read by the lifecycle's sampler -------------------------------------------------------------

    def queued(self) -> int:
        """Messages debounced or batched (the offline cache is counted by :attr:`queue_size` itself)."""
        size = len(self.debouncer) if self.debouncer is not None else 0
        if self.batcher is not None:
            size += len(self.batcher)
        return size

    # -- lifecycle -------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        if self.debouncer is not None or self.batcher is not None:
            self._greenlets.append(gevent.spawn(self._pump))
        open_rate = self.open_rate
        if open_rate > 0:
            self.run_on_schedule(open_rate, self._scheduled_chat, poisson=self.open_poisson or None)

    def on_stopping(self) -> None:
        self._flush_strategies(final=True)

    # -- sending through the strategies ----------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, message: dict[str, Any], *, scheduled: float | None = None
    ) -> bool:
        """Send ``message`` through the strategies switched on (debounce, batch, offline cache).

        Args:
            scheduled: open model: the unix time this send was scheduled for.

        Returns:
            ``True`` if it left the user now (sent, debounced or batched), ``False`` if it was parked.
        """
        if not self.connected:
            self._park(message)
            return False
        if self.debouncer is not None and message["type"] == "progress_update":
            progress = message["progress"]
            self.debouncer.offer((progress["subject"], progress["topic"]), message, time.monotonic())
            if len(self.debouncer) == 1:
                self._wake.set()
            return True
        return self._emit(message, scheduled)

    def _emit(self, message: dict[str, Any], scheduled: float | None = None) -> bool:
        if self.batcher is not None:
            batch = self.batcher.add((message, scheduled), time.monotonic())
            if batch is not None:
                self._send_batch(batch)
            elif len(self.batcher) == 1:
                self._wake.set()
            return True
        try:
            self.client.send(message, scheduled=scheduled)
        except ConnectionLost:
            self._park(message)
            return False
        return True

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
        self.park(functools.partial(self.client.send, message), message["type"])

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
            if self.connected:
                self._flush_strategies()
            elif deadlines:
                gevent.sleep(0.05)  # disconnected: keep holding; the reconnect flushes the cache first

    # -- open model ------------------------------------------------------------------------------------------

    def _scheduled_chat(self, at: float) -> None:
        """The open model's action: a chat message, measured from its scheduled time ``at``."""
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
