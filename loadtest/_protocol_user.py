"""``ProtocolUser``: an abstract Locust user holding one measured WebSocket of any protocol.

A subclass says which protocol its server speaks (a :class:`~loadtest._protocol.Protocol`), which pushes to
measure (:class:`~loadtest._protocol.Push`, or methods marked with :func:`push_handler`) and what its tasks
send (:meth:`ProtocolUser.request`, :meth:`~ProtocolUser.call`, :meth:`~ProtocolUser.send` ...). Everything
else is done here, with no code from the subclass, exactly as for the seed's own users:

* the connection state machine (:data:`TRANSITIONS`: ``connected`` -> ``reconnecting`` -> ``connected`` |
  ``disconnected``), every transition a connection event in the run store, and the ``users.<state>`` and
  ``queue_size`` gauges (the lifecycle samples :attr:`~ProtocolUser.connection_state` and
  :attr:`~ProtocolUser.queue_size` of every live user once a second);
* reconnecting with :class:`~loadtest._strategies.Backoff` (full jitter, capped, limited:
  ``--reconnect-*``), and the offline cache (``--offline-cache``): what is sent while disconnected is sent,
  all of it and in order, on reconnect;
* the open model (:meth:`~ProtocolUser.run_on_schedule`: send times from a fixed schedule, latency measured
  from them, the send lag recorded) and think times (:attr:`~ProtocolUser.think`, seeded per user);
* every measurement into the process's aggregator, so the monitor, the report and the gate show it.

Randomness comes from one ``random.Random`` per user (:attr:`~ProtocolUser.rng`), seeded with ``--seed`` and
the user's id (which follows spawn order): the same seed repeats the traffic.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import gevent
from locust import User

from loadtest._clock import sleep_until
from loadtest._connection import ConnectFailed, Connection, ConnectionLost
from loadtest._process_state import Runtime, runtime
from loadtest._protocol import Expect, JsonProtocol, Protocol, Push
from loadtest._schedule import OpenSchedule, ThinkTime
from loadtest._strategies import Backoff, OfflineCache
from loadtest._transport import ConnectOptions
from runstore.names import METRIC_SEND_LAG, error_counter

__all__ = ["TRANSITIONS", "ProtocolUser", "push_handler"]

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

_PUSH_ATTRIBUTE = "_wsgauge_push"
F = TypeVar("F", bound=Callable[..., Any])


def push_handler(
    kind: str,
    *,
    metric: str | None = None,
    sent_at: str | Callable[[Any], float | None] | None = None,
    missed: str | None = None,
) -> Callable[[F], F]:
    """Mark a :class:`ProtocolUser` method as the handler of pushes of ``kind`` (called with the message).

    The push is measured first, as :class:`~loadtest._protocol.Push` with the same arguments says (delivery
    latency as ``metric`` from the ``sent_at`` time, or only counted as ``recv.<kind>``); a handler that
    raises is counted as ``errors.frame.handler_failed``, the connection carries on.

    Example::

        @push_handler("next", metric="delivery:tick", sent_at="payload.data.tick.sentAt")
        def on_tick(self, message: dict) -> None: ...
    """
    spec = Push(kind, metric, sent_at, missed)

    def mark(method: F) -> F:
        setattr(method, _PUSH_ATTRIBUTE, spec)
        return method

    return mark


class ProtocolUser(User):
    """A simulated user holding one measured WebSocket of :attr:`protocol`; subclass it, add ``@task``\\ s.

    Class attributes (override in a subclass) describe the protocol and the connection; the run's options
    (``--host``, ``--request-timeout``, ``--think-scale``, ``--open-rate``, ``--reconnect-*``,
    ``--offline-cache``, ``--compression``, ``--seed``) come from the run. The connection is opened in
    :meth:`on_start` (a subclass that overrides it calls ``super().on_start()`` first) and closed in
    :meth:`on_stop`.
    """

    abstract = True

    protocol: ClassVar[Protocol] = JsonProtocol()
    """How frames are read and replies matched (a JSON ``{"type": ..., "id": ...}`` protocol by default)."""
    pushes: ClassVar[Sequence[Push]] = ()
    """Pushes measured without a handler method (see also :func:`push_handler`)."""
    persona: ClassVar[str] = "user"
    """Prefix of the user ids (``user-w0-17``) and the identity pool users of this class share."""
    path: ClassVar[str | None] = None
    """Replaces the path (and query) of the run's target URL (``--host``), e.g. ``"/graphql"``."""
    subprotocols: ClassVar[Sequence[str]] = ()
    """Offered in ``Sec-WebSocket-Protocol`` (``("graphql-transport-ws",)``); the server must pick one."""
    headers: ClassVar[Sequence[tuple[str, str]]] = ()
    """Extra handshake headers (``Authorization``, ``Origin`` ...); per user: :meth:`connect_options`."""
    compression: ClassVar[bool | None] = None
    """Offer permessage-deflate as browsers do; ``None``: as ``--compression`` says."""
    ca_file: ClassVar[str | None] = None
    """``wss://``: trust this CA bundle (PEM) instead of the system's."""
    insecure: ClassVar[bool] = False
    """``wss://``: do not verify the server's certificate (a self-signed test target); explicit, never a
    fallback."""
    request_timeout: ClassVar[float | None] = None
    """Seconds before an unanswered request is a timeout; ``None``: ``--request-timeout``."""
    connect_timeout: ClassVar[float] = 10.0
    """Seconds for TCP connect, TLS and the handshake."""
    offline_cache: ClassVar[bool | None] = None
    """Keep what is sent while disconnected and send it on reconnect; ``None``: ``--offline-cache``."""
    think_median_s: ClassVar[float] = 2.0
    """Median pause between two tasks (lognormal, sigma 0.6), before ``--think-scale``."""
    stop_drain_s: ClassVar[float] = 0.5
    """At stop, wait up to this long for outstanding replies before closing."""

    _push_methods: ClassVar[dict[str, tuple[Push, str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, tuple[Push, str]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                spec = getattr(value, _PUSH_ATTRIBUTE, None)
                if isinstance(spec, Push):
                    found[spec.kind] = (spec, attr)
        cls._push_methods = found

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        rt: Runtime = runtime(environment)
        settings = rt.settings
        self.runtime = rt
        self.settings = settings
        self.identity = rt.identities.allocate(self.persona)
        self.user_id: str = self.identity.user_id
        self.rng = random.Random(f"{settings.seed}:{self.user_id}")
        """The user's seeded random source: use it for every choice, the run repeats."""
        self.think = ThinkTime(self.rng, settings.think_scale)
        """Seeded think times, scaled by ``--think-scale``."""
        self.aggregator = rt.aggregator
        timeout = self.request_timeout if self.request_timeout is not None else settings.request_timeout
        self.connection: Connection = self.make_connection(self.target_url(), self.connect_options(), timeout)
        for push in self.pushes:
            self.connection.add_push(push)
        for spec, attr in self._push_methods.values():
            self.connection.add_push(spec, getattr(self, attr))
        use_cache = self.offline_cache if self.offline_cache is not None else settings.offline_cache
        self.offline: OfflineCache[Callable[[], object]] | None = OfflineCache() if use_cache else None
        self.backoff = Backoff(
            settings.reconnect_base_ms / 1000.0,
            settings.reconnect_max_ms / 1000.0,
            settings.reconnect_retries,
            self.rng,
        )
        self.schedule: OpenSchedule | None = None
        """The last schedule :meth:`run_on_schedule` started."""
        self._conn_state = "disconnected"
        self._running = False
        self._flushing = False
        self._greenlets: list[gevent.Greenlet] = []
        self._reconnector: gevent.Greenlet | None = None
        rt.users.add(self)

    # -- what to connect to (override per user) --------------------------------------------------------------

    def target_url(self) -> str:
        """The URL to connect to: the run's target (``--host``), its path replaced by :attr:`path`."""
        url = self.runtime.ws_url
        if self.path is None:
            return url
        parts = urlsplit(url)
        path, _, query = self.path.partition("?")
        return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))

    def connect_options(self) -> ConnectOptions:
        """How to connect: the class attributes, the user's session cookie (``--auth``), ``--compression``."""
        compression = self.compression
        if compression is None:
            compression = bool(getattr(self.settings, "compression", False))
        return ConnectOptions(
            headers=tuple(self.headers),
            cookie=self.identity.cookie,
            subprotocols=tuple(self.subprotocols),
            compression=compression,
            ca_file=self.ca_file,
            insecure=self.insecure,
            connect_timeout=self.connect_timeout,
        )

    def make_connection(self, url: str, options: ConnectOptions, request_timeout: float) -> Connection:
        """The user's :class:`~loadtest._connection.Connection` (a subclass may return its own kind)."""
        return Connection(
            self.environment,
            self.aggregator,
            url,
            protocol=self.protocol,
            options=options,
            user_id=self.user_id,
            request_timeout=request_timeout,
            on_close=self._connection_lost,
        )

    # -- hooks -----------------------------------------------------------------------------------------------

    def on_connected(self) -> None:
        """Called after every successful (re)connect, before the offline cache is sent: a protocol's own
        opening (GraphQL's ``connection_init``, a login call). An exception drops the connection (the user
        reconnects as after any loss)."""

    def on_disconnected(self, reason: str) -> None:
        """Called when the connection is lost (not when the user closes it)."""

    def on_stopping(self) -> None:
        """Called at stop while still connected, before the last replies are drained and the socket closed."""

    def queued(self) -> int:
        """Messages a subclass holds back itself (added to :attr:`queue_size`)."""
        return 0

    # -- gauges read by the lifecycle's sampler -------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        """``connected``, ``reconnecting`` or ``disconnected`` (the seed's ``connectionStatus``)."""
        return self._conn_state

    @property
    def queue_size(self) -> int:
        """Messages held client-side: offline-cached plus :meth:`queued` (the seed's ``messageQueueSize``)."""
        size = len(self.offline) if self.offline is not None else 0
        return size + self.queued()

    @property
    def connected(self) -> bool:
        """Whether the user is connected now (and not sending its offline cache)."""
        return self._conn_state == "connected" and not self._flushing

    # -- lifecycle -------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Connect (or start reconnecting); a subclass calls ``super().on_start()`` first."""
        self._running = True
        if not self._try_connect():
            self._start_reconnecting("initial connect failed")

    def on_stop(self) -> None:
        """Stop the schedules and the reconnects, drain the replies, close; a subclass calls ``super()``."""
        if not self._running:
            return
        self._running = False
        current = gevent.getcurrent()
        for greenlet in [*self._greenlets, self._reconnector]:
            if greenlet is not None and greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets.clear()
        self._reconnector = None
        if self.connection.connected:
            try:
                self.on_stopping()
            except Exception:
                logger.exception("on_stopping failed")
            self.connection.close(drain=self.stop_drain_s)
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
            self.connection.connect()
        except ConnectFailed as exc:
            self._transition("connect_failed", exc.code)
            return False
        self.backoff.reset()
        self._transition("connected")
        try:
            self.on_connected()
        except Exception as exc:  # counted where it failed (a timeout, an error reply); reconnect
            logger.debug("on_connected failed: %r", exc)
            self.connection.abort()
            return True
        self._flush_offline()
        return True

    def _connection_lost(self, reason: str) -> None:
        """The connection's ``on_close``: it dropped (called in its receive greenlet)."""
        if not self._running or self._conn_state != "connected":
            return
        self._transition("disconnected", reason[:200])
        try:
            self.on_disconnected(reason)
        except Exception:
            logger.exception("on_disconnected failed")
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
            if self._running and not self.connection.connected:
                self._try_connect()

    # -- sending ---------------------------------------------------------------------------------------------

    def request(
        self,
        message: Any,
        name: str,
        *,
        kind: str | None = None,
        key: Hashable | None = None,
        scheduled: float | None = None,
        expect: Iterable[Expect] = (),
    ) -> bool:
        """Send a request whose reply is measured as ``name`` (see :meth:`Connection.request`).

        While disconnected it goes to the offline cache (sent on reconnect, timed from then), or, with the
        cache off, is counted as ``errors.<kind>.not_connected``.

        Returns:
            ``True`` if it was sent now.
        """
        if self._sent_now(
            self.connection.request, message, name, kind=kind, key=key, scheduled=scheduled, expect=expect
        ):
            return True
        self.park(
            functools.partial(
                self.connection.request, message, name, kind=kind, key=key, expect=tuple(expect)
            ),
            kind or name,
        )
        return False

    def call(self, message: Any, name: str, *, kind: str | None = None, key: Hashable | None = None) -> Any:
        """Send a request and wait for its reply (measured as ``name``); return the reply, decoded.

        Raises:
            ServerError: the reply is an error.
            RequestTimeout: no reply in time.
            ConnectionLost: not connected (counted as ``errors.<kind>.not_connected``) or lost meanwhile.
        """
        if not self.connected:
            self.aggregator.incr(error_counter(kind or name, "not_connected"))
            raise ConnectionLost("not connected")
        return self.connection.call(message, name, kind=kind, key=key)

    def send(
        self,
        message: Any,
        *,
        kind: str | None = None,
        scheduled: float | None = None,
        expect: Iterable[Expect] = (),
    ) -> bool:
        """Send a message fire-and-forget, or awaiting only ``expect`` (see :meth:`Connection.send`);
        offline-cached while disconnected.

        Returns:
            ``True`` if it was sent now.
        """
        if self._sent_now(self.connection.send, message, kind=kind, scheduled=scheduled, expect=expect):
            return True
        kind = kind or self.protocol.outgoing_kind(message) or "message"
        self.park(functools.partial(self.connection.send, message, kind=kind, expect=tuple(expect)), kind)
        return False

    def send_text(self, text: str | bytes, *, kind: str = "text") -> bool:
        """Send one text frame as it is; offline-cached while disconnected. ``True`` if sent now."""
        return self._send_raw(self.connection.send_text, text, kind)

    def send_binary(self, data: bytes, *, kind: str = "binary") -> bool:
        """Send one binary frame as it is; offline-cached while disconnected. ``True`` if sent now."""
        return self._send_raw(self.connection.send_binary, data, kind)

    def _send_raw(self, send: Callable[..., None], data: Any, kind: str) -> bool:
        if self._sent_now(send, data, kind=kind):
            return True
        self.park(functools.partial(send, data, kind=kind), kind)
        return False

    def _sent_now(self, send: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
        """The one way every send goes out now: ``send(*args, **kwargs)`` if connected; ``False`` if not,
        or if the connection dropped meanwhile (the caller parks it)."""
        if self.connected:
            try:
                send(*args, **kwargs)
                return True
            except ConnectionLost:
                pass
        return False

    def park(self, action: Callable[[], object], kind: str) -> None:
        """Keep a send that cannot happen now: in the offline cache, or count it as ``not_connected``.

        ``action`` is called on reconnect, in order; it raises :class:`ConnectionLost` if it cannot send.
        """
        if self.offline is not None:
            self.offline.push(action)
        else:
            self.aggregator.incr(error_counter(kind, "not_connected"))

    def _flush_offline(self) -> None:
        """Send everything cached while disconnected, in order; a failure keeps the rest cached."""
        offline = self.offline
        if offline is None or not len(offline):
            return
        self._flushing = True  # new sends queue behind the cache, so order holds
        try:
            offline.flush(_run_parked)
        finally:
            self._flushing = False

    # -- open model and think times --------------------------------------------------------------------------

    @property
    def open_rate(self) -> float:
        """This user's share of ``--open-rate`` / ``--open-total-rate`` (sends per second; 0: closed)."""
        total_users = getattr(self.environment.parsed_options, "num_users", None)
        return self.settings.open_rate_per_user(total_users)

    def run_on_schedule(
        self, rate: float, action: Callable[[float], object], *, poisson: bool | None = None
    ) -> OpenSchedule:
        """Call ``action(scheduled)`` ``rate`` times a second on a fixed schedule, in a greenlet of its own.

        The open model: pass ``scheduled`` on to :meth:`request` / :meth:`send` and the latency counts from
        the scheduled time, whatever the server (or this generator) does meanwhile; the send lag (actual -
        scheduled) is recorded as ``send_lag``. The schedule never skips: behind, it calls back to back.
        Call it from :meth:`on_start` (after ``super().on_start()``); it stops with the user.

        Args:
            rate: calls per second (> 0), e.g. :attr:`open_rate`.
            poisson: ``True``: a seeded Poisson process of that rate; default ``--open-arrivals``.
        """
        if poisson is None:
            poisson = self.settings.open_poisson
        schedule = OpenSchedule(rate, time.time(), self.rng, poisson=poisson)
        self.schedule = schedule
        self._greenlets.append(gevent.spawn(self._schedule_loop, schedule, action))
        return schedule

    def _schedule_loop(self, schedule: OpenSchedule, action: Callable[[float], object]) -> None:
        record = self.aggregator.record_latency
        while self._running:
            at = schedule.next_send_at()
            sleep_until(at)
            if not self._running:
                return
            record(METRIC_SEND_LAG, OpenSchedule.lag(time.time(), at) * 1e6)
            try:
                action(at)
            except Exception:  # a bug in one call must not end the schedule
                logger.exception("a scheduled action failed")

    def wait_time(self) -> float:
        """Think time between two tasks: lognormal around :attr:`think_median_s`, ``--think-scale``\\ d."""
        return self.think.lognormal(self.think_median_s)


def _run_parked(action: Callable[[], object]) -> bool:
    try:
        action()
    except ConnectionLost:
        return False
    return True
