"""``WsClient``: the seed protocol's measured connection, built on the public user API only.

The seed's frames, as :mod:`loadtest.user_api` sees them (:class:`SeedProtocol`):

* ``ack`` / ``error`` answer the client frame whose ``requestId`` they carry: measured as
  ``ack:<type>`` (``ack:chat_message``), an ``error`` failing it with the server's code;
* ``pong`` answers the ``ping`` with the same ``ts``: measured as ``pong`` (the seed's ``websocketLatency``);
* ``progress_sync`` answers a ``progress_update`` with the same ``(subject, topic, completion)``: measured as
  ``sync:progress`` (errors ``sync_timeout`` / ``sync_lost``), besides that update's own ack;
* pushes carry the sender's wall-clock send time -- the chat ``message.timestamp`` the server echoes in
  ``new_message`` (``delivery:chat``), the back end's ``sent_at=`` in a ``notification_update`` body
  (``push:notification``) -- from which the receiver measures the cross-user latency; one sent before this
  connection began is counted as missed, not timed.

Everything else (the socket, matching, timeouts, recording, bad frames) is the public
:class:`~loadtest.user_api.Connection`'s. A bad seed frame -- not JSON, not an object, no ``type``, a
mistyped field -- is ``errors.frame.malformed_frame``; an unknown ``type`` or a binary frame
``errors.frame.unexpected_frame``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from loadtest.user_api import (
    REQUEST_TYPE,
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectOptions,
    Expect,
    JsonProtocol,
    PendingRequest,
    Push,
    RequestTimeout,
    ServerError,
    format_timestamp,
    parse_timestamp,
)
from runstore.names import (
    METRIC_DELIVERY_CHAT,
    METRIC_PONG,
    METRIC_PUSH_NOTIFICATION,
    METRIC_SYNC_PROGRESS,
    MISSED_DELIVERY_CHAT,
    MISSED_PUSH_NOTIFICATION,
    ack_metric,
    sent_counter,
)
from runstore.samples import SampleAggregator

__all__ = [
    "REQUEST_TYPE",
    "ConnectFailed",
    "ConnectionLost",
    "PendingRequest",
    "RequestTimeout",
    "SeedProtocol",
    "ServerError",
    "WsClient",
    "format_timestamp",
    "notification_body",
    "parse_timestamp",
    "sent_at_of_body",
]

PushHandler = Callable[[str, dict[str, Any]], None]
CloseHandler = Callable[[str], None]

_SENT_AT = "sent_at="


def notification_body(text: str, sent_at: float) -> str:
    """A notification body carrying the back end's send time, for :func:`sent_at_of_body`."""
    return f"{text} {_SENT_AT}{sent_at:.6f}"


def sent_at_of_body(body: object) -> float | None:
    """The ``sent_at=`` time a back-end user embedded in a notification body, or ``None``."""
    if type(body) is not str:
        return None
    _, found, tail = body.rpartition(_SENT_AT)
    if not found:
        return None
    try:
        return float(tail)
    except ValueError:
        return None


class SeedProtocol(JsonProtocol):
    """The seed's frames: ``{"type": ...}`` objects; requests carry ``requestId``; strictly checked."""

    def __init__(self) -> None:
        super().__init__(kind="type", request_id="requestId")

    def kind(self, message: Any) -> str | None:
        if type(message) is not dict:
            raise TypeError("a seed frame is a JSON object")
        kind = message.get("type")
        if type(kind) is not str:
            raise TypeError("a seed frame has a string type")
        return kind

    def reply_key(self, message: Any, kind: str | None) -> Hashable | None:
        if kind == "ack":
            rid = message["requestId"]
            if type(rid) is not int and type(rid) is not str:
                raise TypeError("ack.requestId is not an integer or a string")
            return rid
        if kind == "error":
            rid = message.get("requestId")
            if rid is not None and type(rid) is not int and type(rid) is not str:
                raise TypeError("error.requestId is not an integer or a string")
            return rid
        if kind == "pong":
            ts = message["ts"]
            if type(ts) is not float and type(ts) is not int:
                raise TypeError("pong.ts is not a number")
            return ("pong", ts)
        if kind == "progress_sync":
            data = message["data"]
            key = ("sync", data["subject"], data["topic"], data["completion"])
            if type(key[1]) is not str or type(key[2]) is not str or type(key[3]) not in (int, float):
                raise TypeError("progress_sync.data has mistyped fields")
            return key
        return None

    def error(self, message: Any, kind: str | None) -> str | None:
        if kind != "error":
            return None
        code = message["code"]
        if type(code) is not str or not code:
            raise ValueError("error frame without a code")
        return code


def _chat_sent_at(message: Any) -> float | None:
    data = message["data"]
    if type(data) is not dict:
        raise TypeError("new_message.data is not an object")
    return parse_timestamp(data.get("timestamp"))


def _notification_sent_at(message: Any) -> float | None:
    data = message["data"]
    if type(data) is not dict:
        raise TypeError("notification_update.data is not an object")
    if data.get("read") is True:  # confirms our notification_read: not a new notification
        return None
    return sent_at_of_body(data.get("body"))


def _sync_key(message: dict[str, Any]) -> tuple[Any, ...]:
    progress = message["progress"]
    return ("sync", progress["subject"], progress["topic"], progress["completion"])


SEED_PUSHES = (
    Push("new_message", METRIC_DELIVERY_CHAT, _chat_sent_at, MISSED_DELIVERY_CHAT),
    Push("notification_update", METRIC_PUSH_NOTIFICATION, _notification_sent_at, MISSED_PUSH_NOTIFICATION),
    Push("progress_sync"),
)
"""The seed's pushes: chat delivery and notification latency from the send time they carry; progress syncs
only handed on (their latency is a reply's, ``sync:progress``)."""


class WsClient(Connection):
    """A measured WebSocket connection speaking the seed protocol.

    Args:
        environment: the Locust ``Environment`` whose ``events.request`` is fired.
        aggregator: where latencies (µs), counters and connection events are recorded.
        url: ``ws://`` or ``wss://`` endpoint.
        user_id: the simulated user (for logs only; never in metric names).
        cookie: ``Cookie`` header value, or ``None`` (ignored when ``options`` is given: put it there).
        request_timeout: seconds before an unanswered request counts as a timeout.
        use_acks: send ``requestId`` and measure ``ack`` round trips; ``False`` sends the seed's bare frames.
        on_push: called with ``(type, data)`` for every ``new_message``, ``notification_update`` and
            ``progress_sync`` after it is measured (read at each push: it may be replaced).
        on_close: called with a reason when the connection is lost (not when :meth:`close` is called).
        connect_timeout: seconds for TCP connect plus handshake (ignored when ``options`` is given).
        options: headers, subprotocols, TLS, compression (:class:`~loadtest.user_api.ConnectOptions`).
    """

    def __init__(
        self,
        environment: Any,
        aggregator: SampleAggregator,
        url: str,
        *,
        user_id: str,
        cookie: str | None = None,
        request_timeout: float = 10.0,
        use_acks: bool = True,
        on_push: PushHandler | None = None,
        on_close: CloseHandler | None = None,
        connect_timeout: float = 10.0,
        options: ConnectOptions | None = None,
    ) -> None:
        if options is None:
            options = ConnectOptions(cookie=cookie, connect_timeout=connect_timeout)
        super().__init__(
            environment,
            aggregator,
            url,
            protocol=SeedProtocol(),
            options=options,
            user_id=user_id,
            request_timeout=request_timeout,
            on_close=on_close,
        )
        self.use_acks = use_acks
        self.on_push = on_push
        self._sent_counters: dict[str, str] = {}
        for push in SEED_PUSHES:
            self.add_push(push, self._handler(push.kind))

    def _handler(self, kind: str) -> Callable[[Any], None]:
        def hand_on(message: Any) -> None:
            on_push = self.on_push
            if on_push is not None:
                on_push(kind, message["data"])

        return hand_on

    # -- sending -----------------------------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, message: dict[str, Any], *, scheduled: float | None = None
    ) -> None:
        """Send one seed frame; its replies are matched and measured by the receive greenlet.

        ``message`` is the frame as a dict with its ``type``; the client adds ``requestId`` (with acks on),
        ``ts`` for a ``ping``, and, for ``chat_message``, sets ``message.timestamp`` to the send time (the
        scheduled time in the open model), so that receivers measure delivery from it.

        Args:
            scheduled: open model: the Unix time the send was scheduled for; round trips are measured from it.

        Raises:
            ConnectionLost: the frame could not be sent (nothing is counted; the caller may queue it again).
        """
        kind = message["type"]
        if kind == "ping":
            ts = round(time.time() * 1000.0, 3)
            while self.is_pending(("pong", ts)):
                ts += 0.001
            message["ts"] = ts
            self.request(message, METRIC_PONG, kind="ping", key=("pong", ts), scheduled=scheduled)
            return
        expect = self._prepare(message, kind, scheduled)
        if self.use_acks:
            self.request(message, ack_metric(kind), kind=kind, scheduled=scheduled, expect=expect)
        else:
            Connection.send(self, message, kind=kind, scheduled=scheduled, expect=expect)

    def send_batch(self, messages: list[dict[str, Any]], *, scheduled: float | None = None) -> None:
        """Send several frames in one ``batch`` envelope (measured as ``ack:batch``, each inner one too).

        Raises:
            ConnectionLost: nothing was sent; the caller may queue the messages again.
        """
        expect: list[Expect] = []
        for m in messages:
            kind = m["type"]
            inner = self._prepare(m, kind, scheduled)
            if self.use_acks:
                rid = self.next_id()
                m["requestId"] = rid
                expect.append(Expect(rid, ack_metric(kind), kind, cancels=tuple(e.key for e in inner)))
            expect.extend(inner)
        envelope: dict[str, Any] = {"type": "batch", "messages": messages}
        if self.use_acks:
            rid = self.next_id()
            envelope["requestId"] = rid
            expect.append(Expect(rid, ack_metric("batch"), "batch"))
        Connection.send(self, envelope, kind="batch", scheduled=scheduled, expect=expect)
        incr = self.aggregator.incr
        for m in messages:
            incr(self._sent_counter(m["type"]))

    def ping(self) -> None:
        """Send an application ``ping {ts}``; its ``pong`` is measured as ``pong`` (the seed's latency).

        Raises:
            ConnectionLost: not connected.
        """
        self.send({"type": "ping", "ts": None})

    def _prepare(self, message: dict[str, Any], kind: str, scheduled: float | None) -> list[Expect]:
        """Stamp a chat message's send time; the ``progress_sync`` a progress update waits for."""
        if kind == "chat_message":
            # The receivers measure delivery from this: the scheduled time in the open model, else now
            # (a few microseconds before the write: delivery is never understated).
            wall = time.time()
            sent = scheduled if scheduled is not None and scheduled < wall else wall
            message["message"]["timestamp"] = format_timestamp(sent)
            return []
        if kind == "progress_update":
            key = _sync_key(message)
            if not self.is_pending(key):  # the same update twice: its one sync is timed once
                return [Expect(key, METRIC_SYNC_PROGRESS, kind, "sync_timeout", "sync_lost")]
        return []

    def _sent_counter(self, kind: str) -> str:
        name = self._sent_counters.get(kind)
        if name is None:
            name = self._sent_counters[kind] = sent_counter(kind)
        return name
