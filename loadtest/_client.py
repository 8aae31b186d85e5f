"""``WsClient``: one simulated user's WebSocket connection, measured where the samples are born.

The client speaks RFC 6455 itself (:mod:`loadtest._wire`, sans I/O) on a gevent socket (it works under
Locust's monkeypatching and without it, so tests need not patch the test process). One receive greenlet per
connection reads whatever the socket has, stamps **one receive time per read** before handling any frame of
it -- two replies that arrived in one TCP segment get the same time; on Linux the kernel's receive timestamp
(``SO_TIMESTAMPNS``), so that a stall of this process between a reply's arrival and its read (GC, a busy hub,
the GIL, a starved core) is not counted as the target's latency (replies that queued up during a stall share
the stamp of the last to arrive: the kernel merges queued segments; still never earlier than the wire) --
and parses every text frame with orjson:

* ``ack`` / ``error`` are matched by ``requestId`` to a :class:`PendingRequest` (a NamedTuple, popped on
  reply, as locust's ``contrib/mqtt.py`` does): each request fires **exactly one** Locust ``request`` event
  -- success, server error or timeout after ``request_timeout``, or ``connection_lost``.
* ``pong`` is matched by its ``ts``; ``progress_sync`` by ``(subject, topic, completion)``.
* pushes (``new_message``, ``notification_update``) carry the sender's wall-clock send time (the chat
  ``message.timestamp`` the server echoes; the back end's ``sent_at=`` in the notification body), from which
  the receiver measures the cross-user latency.

Every latency goes to the process's :class:`~runstore.samples.SampleAggregator` in microseconds (metric names
of :mod:`runstore.names`) and to Locust as a ``request`` event (request type ``WS``, milliseconds as a float,
stable names such as ``ack:chat_message``). Round trips are timed with ``time.perf_counter()``, from just
before the frame's bytes are written (after serialising and framing; in the open model, from the scheduled
time) to the arrival of the reply; cross-user latencies with ``time.time()`` (both ends on the same
machine's clock).

A bad server frame never raises: it is counted (``errors.frame.malformed_frame``,
``errors.frame.unexpected_frame``) and dropped.

Sending: all sends of one connection are serialised by a gevent lock (the receive greenlet answers the
server's WebSocket pings while a user greenlet may be sending; an unlocked send that blocks mid-frame would
interleave two frames). A ``threading.Lock`` would, without monkeypatching, block the whole gevent thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import gevent
import orjson

from loadtest._locust_stats import flush_all as flush_stats_batches
from loadtest._locust_stats import stats_batch
from loadtest._transport import _Connection, _open_connection, _recv_stamped
from loadtest._wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HandshakeFailed,
    HandshakeRejected,
    ProtocolError,
    encode_frame,
)
from runstore.names import (
    METRIC_CONNECT,
    METRIC_DELIVERY_CHAT,
    METRIC_PONG,
    METRIC_PUSH_NOTIFICATION,
    METRIC_SYNC_PROGRESS,
    MISSED_DELIVERY_CHAT,
    MISSED_PUSH_NOTIFICATION,
    ack_metric,
    error_counter,
    frame_error_counter,
    missed_counter,
    received_counter,
    sent_counter,
)
from runstore.samples import SampleAggregator

__all__ = [
    "REQUEST_TYPE",
    "ConnectFailed",
    "ConnectionLost",
    "PendingRequest",
    "RequestTimeout",
    "ServerError",
    "WsClient",
    "format_timestamp",
    "notification_body",
    "parse_timestamp",
    "sent_at_of_body",
]

logger = logging.getLogger(__name__)

REQUEST_TYPE = "WS"
"""Locust ``request_type`` of every WebSocket measurement."""

PushHandler = Callable[[str, dict[str, Any]], None]
CloseHandler = Callable[[str], None]

_NO_CONTEXT: dict[str, Any] = {}
_SENT_AT = "sent_at="
_MALFORMED = frame_error_counter("malformed_frame")
_UNEXPECTED = frame_error_counter("unexpected_frame")
_LATE_REPLY = frame_error_counter("late_reply")
_HANDLER_FAILED = frame_error_counter("handler_failed")
_READ_SIZE = 65536
"""Bytes asked of one ``recv``: everything the kernel holds for a connection in all but bulk transfers."""
_CLOSE_NORMAL = (1000).to_bytes(2, "big")


class ServerError(Exception):
    """The server answered a request with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class RequestTimeout(Exception):
    """No reply within the request timeout."""


class ConnectionLost(Exception):
    """The connection closed (or could not send) before the reply arrived."""


class _ServerClosed(Exception):
    """The server's close frame ended the read loop."""


class ConnectFailed(Exception):
    """The WebSocket could not be opened; :attr:`code` is the ``errors.connect.<code>`` kind."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class PendingRequest(NamedTuple):
    """What is remembered about one request until its reply (or timeout) arrives."""

    metric: str
    """Latency metric and Locust name (``ack:chat_message``, ``pong``, ``sync:progress``)."""
    message_type: str
    """The client frame's ``type``: the ``<type>`` of ``errors.<type>.<code>``."""
    start: float
    """``perf_counter()`` the latency counts from (the scheduled time, mapped, in the open model)."""
    deadline: float
    """``perf_counter()`` after which it times out."""
    link: Any = None
    """For a ``progress_update`` ack: the key of its ``progress_sync`` wait, dropped if the update fails."""


_Entry = tuple[dict[Any, PendingRequest], Any, str, str, Any]
"""Where a reply will be awaited: ``(table, key, metric, message type, link)``."""


# -- timestamps --------------------------------------------------------------------------------------------


_second_prefix: list[Any] = [None, ""]


def format_timestamp(unix: float) -> str:
    """ISO-8601 UTC with microseconds and ``Z`` (the seed's ``toISOString()``, 1000x finer).

    Hot path (every chat message): the ``YYYY-MM-DDTHH:MM:SS`` part is cached per second.
    """
    second = int(unix)
    micros = round((unix - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cache = _second_prefix
    if cache[0] != second:
        cache[0] = second
        cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{cache[1]}.{micros:06d}Z"


def parse_timestamp(value: object) -> float | None:
    """Unix seconds of an echoed client timestamp: ISO-8601 text, or a JS ``Date.now()`` number (ms).

    Returns ``None`` for anything else (a timestamp some other client wrote).
    """
    if type(value) is str:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if type(value) is int or type(value) is float:
        return value / 1000.0 if value > 1e11 else float(value)
    return None


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


# -- timeouts for all clients of the process ---------------------------------------------------------------


class _Sweeper:
    """One greenlet per process that times out every client's overdue requests a few times a second.

    Requests cost nothing extra for their timeout (no timer each); the greenlet exits when no client is left.
    """

    interval = 0.25

    def __init__(self) -> None:
        self.clients: weakref.WeakSet[WsClient] = weakref.WeakSet()
        self._greenlet: gevent.Greenlet | None = None

    def add(self, client: WsClient) -> None:
        self.clients.add(client)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while self.clients:
            gevent.sleep(self.interval)
            now = time.perf_counter()
            for client in list(self.clients):
                try:
                    client.expire(now)
                except Exception:  # a bug in one client must not stop the others' timeouts
                    logger.exception("expiring requests failed")
            flush_stats_batches()
        flush_stats_batches()


_SWEEPER = _Sweeper()


# -- the client --------------------------------------------------------------------------------------------


class WsClient:
    """A measured WebSocket connection speaking the seed protocol.

    Args:
        environment: the Locust ``Environment`` whose ``events.request`` is fired.
        aggregator: where latencies (µs), counters and connection events are recorded.
        url: ``ws://`` or ``wss://`` endpoint.
        user_id: the simulated user (for connection events only; never in metric names).
        cookie: ``Cookie`` header value, or ``None``.
        request_timeout: seconds before an unanswered request counts as a timeout.
        use_acks: send ``requestId`` and measure ``ack`` round trips; ``False`` sends the seed's bare frames.
        on_push: called with ``(type, data)`` for every ``new_message``, ``notification_update`` and
            ``progress_sync`` after it is measured.
        on_close: called with a reason when the connection is lost (not when :meth:`close` is called).
        connect_timeout: seconds for TCP connect plus handshake.
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
    ) -> None:
        self.environment = environment
        self.aggregator = aggregator
        self.url = url
        self.user_id = user_id
        self.cookie = cookie
        self.request_timeout = request_timeout
        self.use_acks = use_acks
        self.on_push = on_push
        self.on_close = on_close
        self.connect_timeout = connect_timeout
        self.ws: _Connection | None = None
        self.connected_since = 0.0
        """Wall time the current connection attempt started: pushes sent before it were missed."""
        self._acks: dict[int, PendingRequest] = {}
        self._pings: dict[float, PendingRequest] = {}
        self._syncs: dict[tuple[Any, Any, Any], PendingRequest] = {}
        self._ids = itertools.count(1)
        self._reader: gevent.Greenlet | None = None
        self._closing = False
        self._fire = environment.events.request.fire
        self._batch = stats_batch(environment, REQUEST_TYPE)
        """Successes go to Locust's stats in batches while only Locust listens (``_locust_stats``)."""
        self._incr = aggregator.incr
        self._record = aggregator.record_latency
        self._rx_perf = 0.0
        """``perf_counter()`` of the read that brought the frames being handled."""
        self._rx_wall = 0.0
        """``time.time()`` of that read."""
        self._dispatch: dict[str, Callable[[dict[str, Any], int], None]] = {
            "ack": self._on_ack,
            "error": self._on_error,
            "pong": self._on_pong,
            "new_message": self._on_new_message,
            "notification_update": self._on_notification,
            "progress_sync": self._on_progress_sync,
        }

    # -- state -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """``True`` while the WebSocket is open."""
        return self.ws is not None

    @property
    def pending(self) -> int:
        """Requests still waiting for a reply (acks, pongs and progress syncs)."""
        return len(self._acks) + len(self._pings) + len(self._syncs)

    # -- connect / close ---------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the WebSocket and start the receive greenlet; measures ``connect``.

        Raises:
            ConnectFailed: with the ``errors.connect.<code>`` kind (``refused``, ``timeout``,
                ``http_401`` ...), already counted and fired as a failed ``connect`` request.
        """
        if self.ws is not None:
            return
        self._closing = False
        self.connected_since = time.time()
        start = time.perf_counter()
        failure: ConnectFailed | None = None
        try:
            ws = self._open()
        except Exception as exc:
            code, detail = _connect_error(exc)
            self._incr(error_counter("connect", code))
            failure = ConnectFailed(code, detail)
            elapsed = time.perf_counter() - start
        else:  # to the kernel's receive time of the 101 response, mapped onto perf_counter
            elapsed = time.perf_counter() - (time.time() - ws.early_at) - start
        if failure is None:
            self._record(METRIC_CONNECT, elapsed * 1e6)
        self._fire(
            request_type=REQUEST_TYPE,
            name=METRIC_CONNECT,
            response_time=elapsed * 1000.0,
            response_length=0,
            exception=failure,
            context=_NO_CONTEXT,
        )
        if failure is not None:
            raise failure
        self.ws = ws
        self._reader = gevent.spawn(self._read_loop, ws)
        _SWEEPER.add(self)

    def _open(self) -> _Connection:
        return _open_connection(self.url, self.cookie, self.connect_timeout, max(self.request_timeout, 1.0))

    def close(self, drain: float = 0.0) -> None:
        """Close the connection (normal closure); no ``on_close`` callback.

        Args:
            drain: wait up to this many seconds for outstanding replies first. Requests still pending
                afterwards fail with ``connection_lost``.
        """
        ws = self.ws
        if ws is None:
            return
        if drain > 0:
            deadline = time.perf_counter() + drain
            while self.pending and self.ws is not None and time.perf_counter() < deadline:
                gevent.sleep(0.01)
        self._closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                ws.send_frame(OP_CLOSE, _CLOSE_NORMAL)
        self._lost("closed by client")

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (simulates a network loss).

        ``on_close`` is called, as for any connection lost.
        """
        ws = self.ws
        if ws is not None:
            ws.abort()

    def _lost(self, reason: str) -> None:
        ws, self.ws = self.ws, None
        if ws is None:
            return
        reader = self._reader
        self._reader = None
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)
        ws.close()
        self._fail_all(ConnectionLost(reason))
        _SWEEPER.clients.discard(self)  # nothing left to time out; connect() registers again
        if not self._closing and self.on_close is not None:
            self.on_close(reason)

    # -- sending -----------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any], *, scheduled: float | None = None) -> None:
        """Send one frame; its reply is matched and measured by the receive greenlet.

        ``message`` is the frame as a dict with its ``type``; the client adds ``requestId`` (with acks on)
        and, for ``chat_message``, sets ``message.timestamp`` to the send time (the scheduled time in the open
        model), so that receivers measure delivery from it.

        Args:
            scheduled: open model: the unix time the send was scheduled for; round trips are measured from it.

        Raises:
            ConnectionLost: the frame could not be sent (nothing is counted; the caller may queue it again).
        """
        ws = self.ws
        if ws is None:
            raise ConnectionLost("not connected")
        entries: list[_Entry] = []
        self._track(message, scheduled, entries)
        self._write(ws, orjson.dumps(message), entries, scheduled)
        self._incr(sent_counter(message["type"]))

    def send_batch(self, messages: list[dict[str, Any]], *, scheduled: float | None = None) -> None:
        """Send several frames in one ``batch`` envelope (measured as ``ack:batch``, each inner one too).

        Raises:
            ConnectionLost: nothing was sent; the caller may queue the messages again.
        """
        ws = self.ws
        if ws is None:
            raise ConnectionLost("not connected")
        entries: list[_Entry] = []
        for m in messages:
            self._track(m, scheduled, entries)
        envelope: dict[str, Any] = {"type": "batch", "messages": messages}
        self._track(envelope, scheduled, entries)
        self._write(ws, orjson.dumps(envelope), entries, scheduled)
        incr = self._incr
        incr(sent_counter("batch"))
        for m in messages:
            incr(sent_counter(m["type"]))

    def ping(self) -> None:
        """Send an application ``ping {ts}``; its ``pong`` is measured as ``pong`` (the seed's latency).

        Raises:
            ConnectionLost: not connected.
        """
        self.send({"type": "ping", "ts": None})

    def _write(self, ws: _Connection, data: bytes, entries: list[_Entry], scheduled: float | None) -> None:
        """Frame ``data``, then (under the send lock) take the start time, register the replies, write."""
        frame = encode_frame(OP_TEXT, data)
        with ws.lock:
            now = time.perf_counter()
            if scheduled is None:
                start = now
            else:
                late = time.time() - scheduled
                start = now - late if late > 0 else now
            deadline = now + self.request_timeout
            for table, key, metric, kind, link in entries:
                table[key] = PendingRequest(metric, kind, start, deadline, link)
            try:
                ws.write(frame)
            except Exception as exc:
                for table, key, *_ in entries:
                    table.pop(key, None)
                failure = exc
            else:
                return
        self._lost(f"send failed: {failure!r}")
        raise ConnectionLost(str(failure) or type(failure).__name__) from None

    def _track(self, message: dict[str, Any], scheduled: float | None, entries: list[_Entry]) -> None:
        """Add to ``message`` what its reply will be matched by, and to ``entries`` where to wait for it."""
        kind = message["type"]
        if kind == "ping":
            ts = round(time.time() * 1000.0, 3)
            while ts in self._pings:
                ts += 0.001
            message["ts"] = ts
            entries.append((self._pings, ts, METRIC_PONG, "ping", None))
            return
        if kind == "chat_message":
            # The receivers measure delivery from this: the scheduled time in the open model, else now
            # (a few microseconds before the write: delivery is never understated).
            wall = time.time()
            sent = scheduled if scheduled is not None and scheduled < wall else wall
            message["message"]["timestamp"] = format_timestamp(sent)
        link = None
        if kind == "progress_update":
            progress = message["progress"]
            link = (progress["subject"], progress["topic"], progress["completion"])
            entries.append((self._syncs, link, METRIC_SYNC_PROGRESS, kind, None))
        if not self.use_acks:
            return
        rid = next(self._ids)
        message["requestId"] = rid
        entries.append((self._acks, rid, ack_metric(kind), kind, link))

    # -- receiving ---------------------------------------------------------------------------------------

    def _read_loop(self, ws: _Connection) -> None:
        reason = "connection closed"
        sock = ws.sock
        stamped = ws.stamped
        feed = ws.decoder.feed
        handle = self._handle
        perf = time.perf_counter
        wall = time.time
        data, ws.early = ws.early, b""
        at: float | None = ws.early_at
        try:
            while True:
                if not data:
                    try:
                        if stamped:
                            data, at = _recv_stamped(sock, _READ_SIZE)
                        else:
                            data, at = sock.recv(_READ_SIZE), None
                    except TimeoutError:
                        continue  # no bytes for a while: keep waiting (the decoder keeps partial frames)
                    if not data:
                        break
                # One receive time per read, before any of its frames is handled: the kernel's, when it
                # stamps (a stall of this process between the arrival and the read is not the target's).
                now_perf = perf()
                now_wall = wall()
                if at is None or at > now_wall:
                    self._rx_perf, self._rx_wall = now_perf, now_wall
                else:
                    self._rx_perf, self._rx_wall = now_perf - (now_wall - at), at
                frames = feed(data)
                data = b""
                for opcode, payload in frames:
                    if opcode == OP_TEXT:
                        handle(payload)
                    elif opcode == OP_PING:
                        ws.send_frame(OP_PONG, payload)
                    elif opcode == OP_CLOSE:
                        reason = _close_reason(payload)
                        with contextlib.suppress(Exception):
                            ws.send_frame(OP_CLOSE, payload[:2])
                        raise _ServerClosed
                    elif opcode != OP_PONG:  # binary
                        self._incr(_UNEXPECTED)
        except gevent.GreenletExit:
            return
        except _ServerClosed:
            pass
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._lost(reason)

    def on_frame(self, data: bytes | str) -> None:
        """Parse and dispatch one text frame from the server, received now. Never raises.

        The receive greenlet stamps the time of each read itself; this entry is for tests to feed frames.
        """
        self._rx_perf = time.perf_counter()
        self._rx_wall = time.time()
        self._handle(data)

    def _handle(self, data: bytes | str) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._incr(_MALFORMED)
            return
        if type(obj) is not dict:
            self._incr(_MALFORMED)
            return
        kind = obj.get("type")
        handler = self._dispatch.get(kind) if type(kind) is str else None
        if handler is None:
            self._incr(_UNEXPECTED if type(kind) is str else _MALFORMED)
            return
        self._incr(received_counter(kind))
        try:
            handler(obj, len(data))
        except (KeyError, TypeError, ValueError, AttributeError):
            self._incr(_MALFORMED)
        except Exception:  # a bug in a push handler must not kill the connection
            logger.exception("handling a %s frame failed", kind)
            self._incr(_HANDLER_FAILED)

    def _ok(self, ctx: PendingRequest, length: int) -> None:
        elapsed = self._rx_perf - ctx.start
        self._record(ctx.metric, elapsed * 1e6)
        batch = self._batch
        if batch is not None and batch.active:
            batch.log(ctx.metric, elapsed * 1000.0, length)
            return
        self._fire(
            request_type=REQUEST_TYPE,
            name=ctx.metric,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=None,
            context=_NO_CONTEXT,
        )

    def _fail(self, ctx: PendingRequest, code: str, exc: Exception, now: float | None = None) -> None:
        elapsed = (time.perf_counter() if now is None else now) - ctx.start
        self._incr(error_counter(ctx.message_type, code))
        self._fire(
            request_type=REQUEST_TYPE,
            name=ctx.metric,
            response_time=elapsed * 1000.0,
            response_length=0,
            exception=exc,
            context=_NO_CONTEXT,
        )

    def _on_ack(self, obj: dict[str, Any], length: int) -> None:
        rid = obj["requestId"]
        if type(rid) is not int and type(rid) is not str:
            raise TypeError("ack.requestId is not an integer or a string")
        ctx = self._acks.pop(rid, None)
        if ctx is None:
            self._incr(_LATE_REPLY)  # after its timeout, or a requestId we never sent
            return
        self._ok(ctx, length)

    def _on_error(self, obj: dict[str, Any], length: int) -> None:
        code = obj["code"]
        if type(code) is not str or not code:
            raise ValueError("error frame without a code")
        rid = obj.get("requestId")
        if rid is not None and type(rid) is not int and type(rid) is not str:
            raise TypeError("error.requestId is not an integer or a string")
        ctx = self._acks.pop(rid, None) if rid is not None else None
        if ctx is None:
            self._incr(frame_error_counter(code))
            return
        if ctx.link is not None:
            self._syncs.pop(ctx.link, None)  # no progress_sync follows a failed update
        self._fail(ctx, code, ServerError(code, str(obj.get("message", ""))))

    def _on_pong(self, obj: dict[str, Any], length: int) -> None:
        ts = obj["ts"]
        if type(ts) is not float and type(ts) is not int:
            raise TypeError("pong.ts is not a number")
        ctx = self._pings.pop(ts, None)
        if ctx is None:
            self._incr(_LATE_REPLY)
            return
        self._ok(ctx, length)

    def _on_progress_sync(self, obj: dict[str, Any], length: int) -> None:
        data = obj["data"]
        key = (data["subject"], data["topic"], data["completion"])
        if type(key[0]) is not str or type(key[1]) is not str or type(key[2]) not in (int, float):
            raise TypeError("progress_sync.data has mistyped fields")
        ctx = self._syncs.pop(key, None)
        if ctx is not None:
            self._ok(ctx, length)
        if self.on_push is not None:
            self.on_push("progress_sync", data)

    def _on_new_message(self, obj: dict[str, Any], length: int) -> None:
        data = obj["data"]
        if type(data) is not dict:
            raise TypeError("new_message.data is not an object")
        sent_at = parse_timestamp(data.get("timestamp"))
        if sent_at is not None:
            self._cross_user(sent_at, METRIC_DELIVERY_CHAT, MISSED_DELIVERY_CHAT, "new_message", length)
        if self.on_push is not None:
            self.on_push("new_message", data)

    def _on_notification(self, obj: dict[str, Any], length: int) -> None:
        data = obj["data"]
        if type(data) is not dict:
            raise TypeError("notification_update.data is not an object")
        if data.get("read") is not True:  # a new notification (read ones confirm our notification_read)
            sent_at = sent_at_of_body(data.get("body"))
            if sent_at is not None:
                self._cross_user(
                    sent_at, METRIC_PUSH_NOTIFICATION, MISSED_PUSH_NOTIFICATION, "notification_update", length
                )
        if self.on_push is not None:
            self.on_push("notification_update", data)

    def _cross_user(self, sent_at: float, metric: str, missed_name: str, kind: str, length: int) -> None:
        now = self._rx_wall
        latency = now - sent_at if now > sent_at else 0.0
        if sent_at < self.connected_since:
            # Sent while this user was away: delivered from the offline backlog. Counted, and shown to
            # Locust under its own name, but kept out of the live latency histogram.
            self._incr(missed_counter(kind))
            name = missed_name
        else:
            self._record(metric, latency * 1e6)
            name = metric
        batch = self._batch
        if batch is not None and batch.active:
            batch.log(name, latency * 1000.0, length)
            return
        self._fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=latency * 1000.0,
            response_length=length,
            exception=None,
            context=_NO_CONTEXT,
        )

    # -- timeouts ----------------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Fail every request whose deadline passed by ``now`` (a ``perf_counter()`` time) as a timeout.

        Called a few times a second by the process's sweeper greenlet. Returns how many expired.
        """
        expired = 0
        for table, code in ((self._acks, "timeout"), (self._pings, "timeout"), (self._syncs, "sync_timeout")):
            while table:
                key = next(iter(table))
                ctx = table[key]
                if ctx.deadline > now:
                    break  # same timeout for all, inserted in send order: the rest are younger
                del table[key]
                self._fail(ctx, code, RequestTimeout(f"no reply within {self.request_timeout:g} s"), now)
                expired += 1
        return expired

    def _fail_all(self, exc: Exception) -> None:
        for table, code in ((self._acks, "connection_lost"), (self._pings, "connection_lost")):
            while table:
                _, ctx = table.popitem()
                self._fail(ctx, code, exc)
        while self._syncs:
            _, ctx = self._syncs.popitem()
            self._fail(ctx, "sync_lost", exc)


def _connect_error(exc: BaseException) -> tuple[str, str]:
    """``(code, detail)`` of a failed connect, for ``errors.connect.<code>``."""
    if isinstance(exc, HandshakeRejected):
        return f"http_{exc.status_code}", str(exc)[:200]
    if isinstance(exc, ConnectionRefusedError):
        return "refused", str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout", str(exc) or "timed out"
    if isinstance(exc, socket.gaierror):
        return "dns", str(exc)
    if isinstance(exc, ssl.SSLError):
        return "tls", str(exc)
    if isinstance(exc, HandshakeFailed):
        return "handshake", str(exc)[:200]
    if isinstance(exc, OSError):
        return "network", str(exc)
    return type(exc).__name__.lower(), str(exc)[:200]


def _close_reason(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        text = data[2:].decode("utf-8", "replace")
        return f"closed by server: {code} {text}".rstrip()
    return "closed by server"
