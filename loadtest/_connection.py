"""``Connection``: one measured WebSocket connection for any protocol, measured where the samples are born.

What a frame *means* is a :class:`~loadtest._protocol.Protocol`'s business (sans I/O); this module does the
rest, the same for every protocol:

* RFC 6455 itself (:mod:`loadtest._wire`) on a gevent socket (:mod:`loadtest._transport`), with
  permessage-deflate when negotiated (:mod:`loadtest._deflate`). It works under Locust's monkeypatching and
  without it, so tests need not patch the test process.
* One receive greenlet per connection reads whatever the socket has and stamps **one receive time per
  read** before handling any frame of it -- on Linux the kernel's receive timestamp (``SO_TIMESTAMPNS``), so
  that a stall of this process between a reply's arrival and its read (GC, a busy hub, a starved core) is
  not counted as the target's latency.
* Requests are matched to replies by key (a :class:`PendingRequest` NamedTuple per request, popped on reply,
  as locust's ``contrib/mqtt.py`` does): each fires **exactly one** Locust ``request`` event -- success, an
  error reply (:class:`ServerError`), a timeout after ``request_timeout`` (:class:`RequestTimeout`), or the
  connection lost (:class:`ConnectionLost`). Round trips are timed with ``time.perf_counter()`` from just
  before the frame's bytes are written (in the open model, from the scheduled time) to the reply's arrival.
* Pushes (:class:`~loadtest._protocol.Push`) are timed from the send time they carry, with ``time.time()``
  (both ends on one machine's clock), or only counted.

Every latency goes to the process's :class:`~runstore.samples.SampleAggregator` in microseconds and to Locust
as a ``request`` event (request type ``WS``, milliseconds as a float). A bad server frame never raises: it is
counted (``errors.frame.<code>``, :func:`runstore.names.frame_error_counter`) and dropped.

Sending: all sends of one connection are serialised by a gevent lock (the receive greenlet answers the
server's pings while a user greenlet may be sending; an unlocked send that blocks mid-frame would interleave
two frames; with compression the deflate context must see messages in wire order). A ``threading.Lock``
would, without monkeypatching, block the whole gevent thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

import gevent
import gevent.event

from loadtest._protocol import Expect, FrameError, Protocol, Push, field_getter, parse_timestamp
from loadtest._transport import ConnectOptions, _Connection, _open_connection, _recv_stamped
from loadtest._wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    HandshakeFailed,
    HandshakeRejected,
    ProtocolError,
    encode_frame,
)
from runstore.names import (
    METRIC_CONNECT,
    MISSED_PREFIX,
    PUSH_PREFIXES,
    check_metric_name,
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
    "Connection",
    "ConnectionLost",
    "PendingRequest",
    "RequestTimeout",
    "ServerError",
]

logger = logging.getLogger(__name__)

REQUEST_TYPE = "WS"
"""Locust ``request_type`` of every WebSocket measurement."""

CloseHandler = Callable[[str], None]
PushHandler = Callable[[Any], None]

_NO_CONTEXT: dict[str, Any] = {}
_MALFORMED = frame_error_counter("malformed_frame")
_UNEXPECTED = frame_error_counter("unexpected_frame")
_LATE_REPLY = frame_error_counter("late_reply")
_UNMATCHED = frame_error_counter("unmatched_reply")
_HANDLER_FAILED = frame_error_counter("handler_failed")
_PROTOCOL_ERROR = frame_error_counter("protocol_error")
_BAD_FRAME = (ValueError, TypeError, KeyError, AttributeError, IndexError)
"""What a protocol's methods raise for a frame they cannot read (orjson's errors are ``ValueError``s)."""
_READ_SIZE = 65536
"""Bytes asked of one ``recv``: everything the kernel holds for a connection in all but bulk transfers."""
_CLOSE_NORMAL = (1000).to_bytes(2, "big")
_EXPIRED_MEMORY = 4096
"""Keys of timed-out requests remembered per connection, to tell a late reply from one never asked for."""


class ServerError(Exception):
    """The server answered a request with an error (:meth:`Protocol.error` gave a code)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.reply: Any = None
        """The error reply, decoded."""


class RequestTimeout(Exception):
    """No reply within the request timeout."""


class ConnectionLost(Exception):
    """The connection closed (or could not send) before the reply arrived, or was not open."""


class _ServerClosed(Exception):
    """The server's close frame ended the read loop."""


class ConnectFailed(Exception):
    """The WebSocket could not be opened; :attr:`code` is the ``errors.connect.<code>`` kind."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class PendingRequest(NamedTuple):
    """What is remembered about one awaited reply until it arrives (or times out)."""

    metric: str
    """Latency metric and Locust name (``rpc:add``, ``ack:chat_message``)."""
    kind: str
    """The request's kind: the ``<kind>`` of ``errors.<kind>.<code>``."""
    start: float
    """``perf_counter()`` the latency counts from (the scheduled time, mapped, in the open model)."""
    deadline: float
    """``perf_counter()`` after which it times out."""
    cancels: tuple[Hashable, ...] = ()
    """Keys of other awaited replies that no longer come if this one is an error."""
    timeout_code: str = "timeout"
    lost_code: str = "connection_lost"
    waiter: gevent.event.AsyncResult | None = None
    """:meth:`Connection.call`'s: set to the reply, or to the exception."""


_Entry = tuple[Hashable, str, str, tuple[Hashable, ...], str, str, Any]
"""An awaited reply before its send: ``(key, metric, kind, cancels, timeout code, lost code, waiter)``."""


class _Route(NamedTuple):
    """A :class:`Push`, ready for the receive path."""

    metric: str | None
    sent_at: Callable[[Any], float | None] | None
    missed: str
    missed_counter: str
    handler: PushHandler | None


_sent_names: dict[str, str] = {}
_recv_names: dict[str, str] = {}


def _sent(kind: str) -> str:
    """``sent.<kind>``, built once per kind (hot path: every send)."""
    name = _sent_names.get(kind)
    if name is None:
        name = _sent_names[kind] = sent_counter(kind)
    return name


def _received(kind: str) -> str:
    """``recv.<kind>``, built once per kind (hot path: every frame)."""
    name = _recv_names.get(kind)
    if name is None:
        name = _recv_names[kind] = received_counter(kind)
    return name


_checked_names: set[str] = set()


def _metric_name(name: str) -> str:
    if name not in _checked_names:
        check_metric_name(name)
        _checked_names.add(name)
    return name


# -- timeouts for all connections of the process ------------------------------------------------------------


class _Sweeper:
    """One greenlet per process that times out every connection's overdue requests a few times a second.

    Requests cost nothing extra for their timeout (no timer each); the greenlet exits when no connection is
    left.
    """

    interval = 0.25

    def __init__(self) -> None:
        self.clients: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._greenlet: gevent.Greenlet | None = None

    def add(self, client: Connection) -> None:
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
                except Exception:  # a bug in one connection must not stop the others' timeouts
                    logger.exception("expiring requests failed")


_SWEEPER = _Sweeper()


# -- the connection ------------------------------------------------------------------------------------------


class Connection:
    """A measured WebSocket connection speaking ``protocol``.

    Args:
        environment: the Locust ``Environment`` whose ``events.request`` is fired.
        aggregator: where latencies (µs) and counters are recorded.
        url: ``ws://`` or ``wss://`` endpoint.
        protocol: how frames are read and requests matched (:class:`~loadtest._protocol.Protocol`).
        options: headers, cookies, subprotocols, TLS, compression, connect timeout.
        user_id: the simulated user (for logs only; never in metric names).
        request_timeout: seconds before an unanswered request counts as a timeout (one for all: the
            sweeper relies on deadlines growing in send order).
        on_close: called with a reason when the connection is lost (not when :meth:`close` is called).
    """

    def __init__(
        self,
        environment: Any,
        aggregator: SampleAggregator,
        url: str,
        *,
        protocol: Protocol,
        options: ConnectOptions | None = None,
        user_id: str = "",
        request_timeout: float = 10.0,
        on_close: CloseHandler | None = None,
    ) -> None:
        self.environment = environment
        self.aggregator = aggregator
        self.url = url
        self.protocol = protocol
        self._new_id = protocol.new_id
        self._set_id = protocol.set_id
        self._encode = protocol.encode
        self.options = options if options is not None else ConnectOptions()
        self.user_id = user_id
        self.request_timeout = request_timeout
        self.on_close = on_close
        self.ws: _Connection | None = None
        self.connected_since = 0.0
        """Wall time the current connection attempt started: pushes sent before it were missed."""
        self._pending: dict[Hashable, PendingRequest] = {}
        self._expired: dict[Hashable, None] = {}
        self._routes: dict[str, _Route] = {}
        self._ids = itertools.count(1)
        self._reader: gevent.Greenlet | None = None
        self._closing = False
        self._fire = environment.events.request.fire
        self._incr = aggregator.incr
        self._record = aggregator.record_latency
        self._rx_perf = 0.0
        """``perf_counter()`` of the read that brought the frames being handled."""
        self._rx_wall = 0.0
        """``time.time()`` of that read."""

    # -- state -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """``True`` while the WebSocket is open."""
        return self.ws is not None

    @property
    def pending(self) -> int:
        """Replies still awaited."""
        return len(self._pending)

    def is_pending(self, key: Hashable) -> bool:
        """Whether a reply with this key is awaited."""
        return key in self._pending

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server picked on the current connection, or ``None``."""
        ws = self.ws
        return ws.subprotocol if ws is not None else None

    @property
    def compressed(self) -> bool:
        """Whether the current connection negotiated permessage-deflate."""
        ws = self.ws
        return ws is not None and ws.deflate is not None

    # -- pushes --------------------------------------------------------------------------------------------

    def add_push(self, push: Push, handler: PushHandler | None = None) -> None:
        """Measure messages of ``push.kind`` as ``push`` says, then call ``handler(message)`` if given.

        One push per kind (a second replaces the first).

        Raises:
            ValueError: a ``metric`` that is not ``push:<name>`` / ``delivery:<name>``, or has no
                ``sent_at``.
        """
        sent_at: Callable[[Any], float | None] | None = None
        if push.metric is not None:
            if not push.metric.startswith(PUSH_PREFIXES):
                raise ValueError(f"push metric {push.metric!r} must start with 'push:' or 'delivery:'")
            _metric_name(push.metric)
            if push.sent_at is None:
                raise ValueError(f"push metric {push.metric!r} needs sent_at (where the send time is)")
        if push.sent_at is not None:
            if callable(push.sent_at):
                sent_at = push.sent_at
            else:
                read = field_getter(push.sent_at)

                def sent_at(message: Any, read: Callable[[Any], Any] = read) -> float | None:
                    return parse_timestamp(read(message))

        self._routes[push.kind] = _Route(
            push.metric,
            sent_at,
            push.missed or f"{MISSED_PREFIX}{push.kind}",
            missed_counter(push.kind),
            handler,
        )

    # -- connect / close ---------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the WebSocket and start the receive greenlet; measures ``connect``.

        Raises:
            ConnectFailed: with the ``errors.connect.<code>`` kind (``refused``, ``timeout``,
                ``http_401``, ``tls``, ``handshake`` ...), already counted and fired as a failed ``connect``.
        """
        if self.ws is not None:
            return
        self._closing = False
        self.connected_since = time.time()
        start = time.perf_counter()
        failure: ConnectFailed | None = None
        try:
            ws = _open_connection(self.url, self.options, max(self.request_timeout, 1.0))
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

    def close(self, drain: float = 0.0) -> None:
        """Close the connection (normal closure); no ``on_close`` callback.

        Args:
            drain: wait up to this many seconds for outstanding replies first. Requests still pending
                afterwards fail with their ``lost_code`` (``connection_lost``).
        """
        ws = self.ws
        if ws is None:
            return
        if drain > 0:
            deadline = time.perf_counter() + drain
            while self._pending and self.ws is not None and time.perf_counter() < deadline:
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

    def next_id(self) -> Hashable:
        """A fresh request id (:meth:`Protocol.new_id`), for a message that carries several requests."""
        return self.protocol.new_id(next(self._ids))

    def request(
        self,
        message: Any,
        name: str,
        *,
        kind: str | None = None,
        key: Hashable | None = None,
        scheduled: float | None = None,
        expect: Iterable[Expect] = (),
        _waiter: gevent.event.AsyncResult | None = None,
    ) -> Hashable:
        """Send a request; its reply is matched and measured as ``name`` by the receive greenlet.

        Args:
            message: what :meth:`Protocol.encode` sends (a dict for JSON); the protocol writes the request id
                into it (:meth:`Protocol.set_id`) unless ``key`` is given.
            name: latency metric and Locust name (``rpc:add``; no ``.``).
            kind: the ``<kind>`` of its ``sent.<kind>`` / ``errors.<kind>.<code>`` counters; default ``name``.
            key: the reply key, when the message already carries what the reply will be matched by.
            scheduled: open model: the Unix time the send was scheduled for; the round trip counts from it.
            expect: more replies this message causes (each measured on its own); an error reply to this
                request cancels them.

        Returns:
            The reply key.

        Raises:
            ConnectionLost: not connected, or the frame could not be sent (nothing is counted).
            ValueError: a bad name, or ``key`` is already awaited.
        """
        ws = self.ws
        if ws is None:
            raise ConnectionLost("not connected")
        if name not in _checked_names:
            _metric_name(name)
        if kind is None:
            kind = name
        elif kind not in _checked_names:
            _metric_name(kind)
        if key is None:
            key = self._new_id(next(self._ids))
            self._set_id(message, key)
        elif key in self._pending:
            raise ValueError(f"a reply with key {key!r} is already awaited")
        entries: list[_Entry]
        if expect:
            extra = self._entries(expect, kind)
            cancels = tuple(e[0] for e in extra)
            entries = [(key, name, kind, cancels, "timeout", "connection_lost", _waiter), *extra]
        else:
            entries = [(key, name, kind, (), "timeout", "connection_lost", _waiter)]
        opcode, data = self._encode(message)
        self._write(ws, opcode, data, entries, scheduled)
        self._incr(_sent(kind))
        return key

    def call(
        self,
        message: Any,
        name: str,
        *,
        kind: str | None = None,
        key: Hashable | None = None,
        scheduled: float | None = None,
    ) -> Any:
        """:meth:`request`, then wait for the reply and return it (decoded); measured the same way.

        Raises:
            ServerError: the reply is an error (its :attr:`~ServerError.reply` is the message).
            RequestTimeout: no reply within the request timeout.
            ConnectionLost: not connected, or lost before the reply.
        """
        waiter = gevent.event.AsyncResult()
        self.request(message, name, kind=kind, key=key, scheduled=scheduled, _waiter=waiter)
        return waiter.get()

    def send(
        self,
        message: Any,
        *,
        kind: str | None = None,
        scheduled: float | None = None,
        expect: Iterable[Expect] = (),
    ) -> None:
        """Send a message that is not a request itself (fire and forget, or awaiting ``expect`` only).

        Args:
            kind: its ``sent.<kind>`` counter; default :meth:`Protocol.outgoing_kind`, else ``text`` /
                ``binary``.
            scheduled: open model: the Unix time the send was scheduled for (the ``expect`` replies count
                from it).
            expect: replies it causes, each measured on its own.

        Raises:
            ConnectionLost: not connected, or the frame could not be sent (nothing is counted).
        """
        ws = self.ws
        if ws is None:
            raise ConnectionLost("not connected")
        opcode, data = self.protocol.encode(message)
        if kind is None:
            kind = self.protocol.outgoing_kind(message) or ("text" if opcode == OP_TEXT else "binary")
        entries = self._entries(expect, kind) if expect else []
        self._write(ws, opcode, data, entries, scheduled)
        self._incr(_sent(kind))

    def send_text(self, text: str | bytes, *, kind: str = "text") -> None:
        """Send one text frame as it is (UTF-8), fire and forget; counted as ``sent.<kind>``.

        Raises:
            ConnectionLost: not connected, or the frame could not be sent.
        """
        self._send_raw(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else bytes(text), kind)

    def send_binary(self, data: bytes, *, kind: str = "binary") -> None:
        """Send one binary frame, fire and forget; counted as ``sent.<kind>``.

        Raises:
            ConnectionLost: not connected, or the frame could not be sent.
        """
        self._send_raw(OP_BINARY, bytes(data), kind)

    def _send_raw(self, opcode: int, data: bytes, kind: str) -> None:
        ws = self.ws
        if ws is None:
            raise ConnectionLost("not connected")
        self._write(ws, opcode, data, [], None)
        self._incr(_sent(kind))

    def _entries(self, expect: Iterable[Expect], kind: str) -> list[_Entry]:
        entries: list[_Entry] = []
        for e in expect:
            if e.key in self._pending:
                raise ValueError(f"a reply with key {e.key!r} is already awaited")
            entries.append(
                (
                    e.key,
                    _metric_name(e.name),
                    kind if e.kind is None else _metric_name(e.kind),
                    tuple(e.cancels),
                    e.timeout_code,
                    e.lost_code,
                    None,
                )
            )
        return entries

    def _write(
        self, ws: _Connection, opcode: int, data: bytes, entries: list[_Entry], scheduled: float | None
    ) -> None:
        """Frame ``data``, then (under the send lock) take the start time, register the replies, write."""
        deflate = ws.deflate
        frame = encode_frame(opcode, data) if deflate is None else b""
        with ws.lock:
            if deflate is not None:  # the deflate context must see messages in wire order
                frame = encode_frame(opcode | RSV1, deflate.compress(opcode, data))
            now = time.perf_counter()
            if scheduled is None:
                start = now
            else:
                late = time.time() - scheduled
                start = now - late if late > 0 else now
            deadline = now + self.request_timeout
            pending = self._pending
            for key, metric, kind, cancels, timeout_code, lost_code, waiter in entries:
                pending[key] = PendingRequest(
                    metric, kind, start, deadline, cancels, timeout_code, lost_code, waiter
                )
            try:
                ws.sock.sendall(frame)
            except Exception as exc:
                for key, *_ in entries:
                    pending.pop(key, None)
                failure = exc
            else:
                return
        self._lost(f"send failed: {failure!r}")
        raise ConnectionLost(str(failure) or type(failure).__name__) from None

    # -- receiving ---------------------------------------------------------------------------------------

    def _read_loop(self, ws: _Connection) -> None:
        reason = "connection closed"
        sock = ws.sock
        stamped = ws.stamped
        feed = ws.decoder.feed
        deflate = ws.deflate
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
                    if opcode in (OP_TEXT, OP_BINARY):
                        handle(opcode, payload)
                    elif opcode & RSV1:
                        assert deflate is not None  # the decoder lets RSV1 through only then
                        plain = opcode & 0x0F
                        handle(plain, deflate.inflate(plain, payload))
                    elif opcode == OP_PING:
                        ws.send_frame(OP_PONG, payload)
                    elif opcode == OP_CLOSE:
                        reason = _close_reason(payload)
                        with contextlib.suppress(Exception):
                            ws.send_frame(OP_CLOSE, payload[:2])
                        raise _ServerClosed
        except gevent.GreenletExit:
            return
        except _ServerClosed:
            pass
        except ProtocolError as exc:
            self._incr(_PROTOCOL_ERROR)
            reason = f"protocol error: {exc}"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._lost(reason)

    def on_frame(self, data: bytes | str, opcode: int = OP_TEXT) -> None:
        """Handle one server message (as its frame's payload), received now. Never raises.

        The receive greenlet stamps the time of each read itself; this entry is for tests to feed frames.
        """
        self._rx_perf = time.perf_counter()
        self._rx_wall = time.time()
        self._handle(opcode, data.encode("utf-8") if isinstance(data, str) else data)

    def _handle(self, opcode: int, payload: bytes) -> None:
        protocol = self.protocol
        incr = self._incr
        try:
            message = protocol.decode(opcode, payload)
            kind = protocol.kind(message)
            key = protocol.reply_key(message, kind)
            code = protocol.error(message, kind)
            route = self._routes.get(kind) if kind is not None else None
            sent_at = route.sent_at(message) if route is not None and route.sent_at is not None else None
        except FrameError as exc:
            incr(frame_error_counter(exc.code))
            return
        except _BAD_FRAME:
            incr(_MALFORMED)
            return
        ctx = self._pending.pop(key, None) if key is not None else None
        if ctx is None and route is None:
            self._unmatched(key, code)
            return
        if kind is not None:
            incr(_received(kind))
        elif ctx is not None:
            incr(_received(ctx.kind))  # a reply of no kind of its own (JSON-RPC): its request's
        length = len(payload)
        if ctx is not None:
            if code is None:
                self._ok(ctx, length, message)
            else:
                for other in ctx.cancels:
                    self._pending.pop(other, None)  # a rejected request causes nothing further
                error = ServerError(code, _error_text(message))
                error.reply = message
                self._fail(ctx, code, error)
        if route is not None:
            if sent_at is not None and route.metric is not None:
                self._delivered(route, sent_at, kind, length)  # type: ignore[arg-type]
            if route.handler is not None:
                try:
                    route.handler(message)
                except Exception:  # a bug in a push handler must not kill the connection
                    logger.exception("handling a %s message failed", kind)
                    incr(_HANDLER_FAILED)

    def _unmatched(self, key: Hashable | None, code: str | None) -> None:
        """A well-formed message that answers no awaited request and is no push we know."""
        if key is not None and key in self._expired:
            self._incr(_LATE_REPLY)  # after its timeout
        elif code is not None:
            self._incr(frame_error_counter(code))  # an error that answers nothing pending
        elif key is not None:
            self._incr(_UNMATCHED)  # an id this connection never sent
        else:
            self._incr(_UNEXPECTED)

    def _ok(self, ctx: PendingRequest, length: int, reply: Any) -> None:
        elapsed = self._rx_perf - ctx.start
        self._record(ctx.metric, elapsed * 1e6)
        self._fire(
            request_type=REQUEST_TYPE,
            name=ctx.metric,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=None,
            context=_NO_CONTEXT,
        )
        if ctx.waiter is not None:
            ctx.waiter.set(reply)

    def _fail(self, ctx: PendingRequest, code: str, exc: Exception, now: float | None = None) -> None:
        elapsed = (time.perf_counter() if now is None else now) - ctx.start
        self._incr(error_counter(ctx.kind, code))
        self._fire(
            request_type=REQUEST_TYPE,
            name=ctx.metric,
            response_time=elapsed * 1000.0,
            response_length=0,
            exception=exc,
            context=_NO_CONTEXT,
        )
        if ctx.waiter is not None:
            ctx.waiter.set_exception(exc)

    def _delivered(self, route: _Route, sent_at: float, kind: str, length: int) -> None:
        now = self._rx_wall
        latency = now - sent_at if now > sent_at else 0.0
        if sent_at < self.connected_since:
            # Sent while this user was away: delivered from the backlog. Counted, and shown to Locust
            # under its own name, but kept out of the live latency histogram.
            self._incr(route.missed_counter)
            name = route.missed
        else:
            name = route.metric  # type: ignore[assignment]
            self._record(name, latency * 1e6)
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
        table = self._pending
        memory = self._expired
        while table:
            key = next(iter(table))
            ctx = table[key]
            if ctx.deadline > now:
                break  # same timeout for all, inserted in send order: the rest are younger
            del table[key]
            memory[key] = None
            if len(memory) > _EXPIRED_MEMORY:
                del memory[next(iter(memory))]
            self._fail(
                ctx, ctx.timeout_code, RequestTimeout(f"no reply within {self.request_timeout:g} s"), now
            )
            expired += 1
        return expired

    def _fail_all(self, exc: Exception) -> None:
        table = self._pending
        while table:
            _, ctx = table.popitem()
            self._fail(ctx, ctx.lost_code, exc)


def _error_text(message: Any) -> str:
    """A short text of an error reply for the failure's message."""
    if type(message) is dict:
        for field in ("message", "reason", "error"):
            value = message.get(field)
            if isinstance(value, str):
                return value[:200]
            if type(value) is dict and isinstance(value.get("message"), str):
                return value["message"][:200]
    return ""


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
